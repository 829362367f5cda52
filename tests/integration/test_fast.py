"""Fast mode with the real model: quality against exact mode on ../shared/eval/gt, the
build's determinism, stale records refused, and fast jobs through a real worker.

Skipped without the fast extra (``pip install -e '.[fast]'``) or the u2net weights. The
first run builds the fast model into the model home (minutes; later runs reuse it).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.contract.options import Options, parse_options
from shared.errors import FastModeUnavailable
from tests.conftest import ROOT

pytest.importorskip("openvino", reason="the fast extra is not installed")
pytest.importorskip("nncf", reason="the fast extra is not installed")

MAX_IOU_DROP = 0.005
MAX_BOUNDARY_F1_DROP = 0.015


@pytest.fixture(scope="module")
def fast_home(model_home: Path) -> Path:
    from worker.engine.fast import build_fast_model
    from worker.engine.models import MODEL_SPECS, verify

    problem = verify(MODEL_SPECS["u2net"], model_home / "u2net.onnx")
    if problem:
        pytest.skip(f"u2net weights not in {model_home} ({problem}); run `cutout models fetch`")
    build_fast_model(model_home)  # nothing to do when a matching one is there
    return model_home


@pytest.fixture(scope="module")
def engine(fast_home: Path):  # type: ignore[no-untyped-def]
    from worker.engine import Engine

    return Engine(fast_home, threads=2)


def test_fast_quality_is_within_the_limits_on_eval_gt(
    engine, eval_dir: Path, artifacts: Path
) -> None:  # type: ignore[no-untyped-def]
    from worker.engine.imageio import decode_image
    from worker.eval.manifest import load_manifest
    from worker.eval.metrics import evaluate
    from worker.eval.runner import alpha_of, load_truth

    manifest = eval_dir / "gt" / "manifest.csv"
    if not manifest.exists():
        pytest.skip(f"{manifest} is absent")
    rows = []
    for item in load_manifest(manifest):
        image = decode_image(item.image_path.read_bytes())
        truth = load_truth(item.mask_path)
        exact = alpha_of(engine.render(image, Options(mask_only=True)))
        fast = alpha_of(engine.render(image, Options(mask_only=True, fast=True)))
        rows.append(
            {
                "image": item.image,
                "category": item.category,
                "exact": evaluate(exact, truth),
                "fast": evaluate(fast, truth),
            }
        )
    assert rows

    def mean(mode: str, metric: str, category: str | None = None) -> float:
        values = [r[mode][metric] for r in rows if category in (None, r["category"])]
        return float(np.mean(values))

    categories = sorted({r["category"] for r in rows})
    report = {
        "items": len(rows),
        "summary": {
            mode: {m: mean(mode, m) for m in ("iou", "boundary_f1", "mae")}
            for mode in ("exact", "fast")
        },
        "by_category": {
            c: {
                mode: {m: mean(mode, m, c) for m in ("iou", "boundary_f1")}
                for mode in ("exact", "fast")
            }
            for c in categories
        },
        "rows": rows,
    }
    out = artifacts / "fast"
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("items", "summary", "by_category")}, indent=2))
    exact, fast = report["summary"]["exact"], report["summary"]["fast"]
    assert fast["iou"] >= exact["iou"] - MAX_IOU_DROP, report["summary"]
    assert fast["boundary_f1"] >= exact["boundary_f1"] - MAX_BOUNDARY_F1_DROP, report["summary"]


def test_the_build_is_deterministic(fast_home: Path, tmp_path: Path) -> None:
    from worker.engine.fast import fast_paths

    (tmp_path / "u2net.onnx").symlink_to(fast_home / "u2net.onnx")
    # a fresh process, as `cutout models build-fast` runs: OpenVINO names the nodes it
    # creates from process-wide counters, so a second build inside a process that already
    # ran OpenVINO writes other names into the XML (same graph, same weights)
    subprocess.run(
        [sys.executable, "-m", "cutout", "models", "build-fast", "--home", str(tmp_path), "-q"],
        check=True,
        cwd=ROOT,
        timeout=1200,
    )
    ours = json.loads(fast_paths(tmp_path)[2].read_text())
    theirs = json.loads(fast_paths(fast_home)[2].read_text())
    ours.pop("built_seconds")
    theirs.pop("built_seconds")
    assert ours == theirs  # the same inputs and the same output sha256


def _copy_fast_model(src: Path, dest: Path) -> None:
    from worker.engine.fast import fast_paths

    for a, b in zip(fast_paths(src), fast_paths(dest), strict=True):
        shutil.copyfile(a, b)


def test_a_copied_fast_model_serves_and_a_stale_record_is_refused(
    fast_home: Path, eval_dir: Path, tmp_path: Path
) -> None:
    from worker.engine import Engine
    from worker.engine.fast import fast_paths

    data = (eval_dir / "photos" / "car-1.jpg").read_bytes()
    _copy_fast_model(fast_home, tmp_path)
    result = Engine(tmp_path, threads=2).process(data, Options(fast=True))
    picture = Image.open(io.BytesIO(result.data))
    assert picture.mode == "RGBA"
    assert picture.size == (result.width, result.height)

    record_path = fast_paths(tmp_path)[2]
    record = json.loads(record_path.read_text())
    record["toolkit"]["openvino"] = "2023.0.0"
    record_path.write_text(json.dumps(record))
    with pytest.raises(FastModeUnavailable, match="toolkit"):
        Engine(tmp_path, threads=2).process(data, Options(fast=True))


def test_exact_and_fast_sessions_live_side_by_side(engine, eval_dir: Path) -> None:  # type: ignore[no-untyped-def]
    data = (eval_dir / "photos" / "car-1.jpg").read_bytes()
    exact = engine.process(data, Options())
    fast = engine.process(data, Options(fast=True))
    again = engine.process(data, Options())
    assert exact.data == again.data  # the exact output is untouched by fast mode
    assert engine._fast is not None
    assert engine._fast.session is not engine.session("u2net")
    a = np.asarray(Image.open(io.BytesIO(exact.data)).getchannel("A")) >= 128
    b = np.asarray(Image.open(io.BytesIO(fast.data)).getchannel("A")) >= 128
    assert np.count_nonzero(a & b) / max(1, np.count_nonzero(a | b)) > 0.95


# through a real worker ------------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_app(service_env):  # type: ignore[no-untyped-def]
    from shared.contract.settings import load_settings
    from shared.contract.tasks import make_celery

    return make_celery(load_settings(service_env))


def _submit(store, storage, celery_app, data: bytes, options: dict, queue: str) -> str:  # type: ignore[no-untyped-def]
    from tests.integration.test_worker import submit

    # a queue of the test's own worker: the session's shared worker must not take it
    return submit(store, storage, celery_app, data, options, queue=queue)


def test_a_fast_job_through_the_worker(  # type: ignore[no-untyped-def]
    fast_home, store, storage, celery_app, start_worker, eval_dir: Path
) -> None:
    from tests.integration.test_worker import finished
    from worker.engine import Engine

    start_worker({"CUTOUT_MODELS": "u2net", "CUTOUT_FAST": "auto"}, args=["--queues", "fastyes"])
    data = (eval_dir / "photos" / "car-1.jpg").read_bytes()
    job = finished(store, _submit(store, storage, celery_app, data, {"fast": True}, "fastyes"), 300)
    assert job.status == "succeeded", job
    assert job.options["fast"] is True
    ours = np.asarray(Image.open(io.BytesIO(storage.get(job.result["key"]))).getchannel("A"))
    local = Engine(fast_home, threads=1).process(data, parse_options({"fast": True}))
    theirs = np.asarray(Image.open(io.BytesIO(local.data)).getchannel("A"))
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 1.0


def test_a_fast_job_on_a_worker_without_fast_mode_fails_clearly(  # type: ignore[no-untyped-def]
    fast_home, store, storage, celery_app, start_worker, eval_dir: Path, tmp_path: Path
) -> None:
    from tests.integration.test_worker import finished

    # a model home with u2net but no fast model, CUTOUT_FAST=auto: no build at start
    home = tmp_path / "models"
    home.mkdir()
    (home / "u2net.onnx").symlink_to(fast_home / "u2net.onnx")
    start_worker(
        {"CUTOUT_MODELS": "u2net", "CUTOUT_MODEL_HOME": str(home), "CUTOUT_FAST": "auto"},
        args=["--queues", "fastno"],
    )
    data = (eval_dir / "photos" / "car-1.jpg").read_bytes()
    job = finished(store, _submit(store, storage, celery_app, data, {"fast": True}, "fastno"), 120)
    assert job.status == "failed", job
    assert job.error["code"] == "fast_mode_unavailable"
    assert not (home / "u2net.fast-int8-320.xml").exists()
