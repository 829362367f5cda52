"""``refine`` with the real models: a job through a real worker gives exactly what
``cutout remove --refine`` gives, and on ../shared/eval/gt refine's mean IoU is not below
exact u2net's (skipped when that folder is absent)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.contract.settings import load_settings
from shared.contract.tasks import make_celery
from tests.conftest import ROOT
from tests.integration.test_worker import finished, photo_bytes, submit


@pytest.fixture(scope="module")
def celery_app(service_env):  # type: ignore[no-untyped-def]
    return make_celery(load_settings(service_env))


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture.convert("RGBA"))


def test_a_refine_job_equals_cutout_remove_refine(  # type: ignore[no-untyped-def]
    store, storage, celery_app, worker, model_home: Path, tmp_path: Path, artifacts: Path
) -> None:
    data = photo_bytes()
    job = finished(store, submit(store, storage, celery_app, data, {"refine": True}), 300)
    assert job.status == "succeeded", job
    assert job.options["refine"] is True
    ours = _pixels(storage.get(job.result["key"]))

    source = tmp_path / "photo.jpg"
    source.write_bytes(data)
    out = tmp_path / "refined.png"
    # the worker runs ONNX Runtime with 1 thread (the fixture's setting): the same here
    done = subprocess.run(
        [sys.executable, "-m", "cutout", "remove", "-q", "--threads", "1", "--refine",
         str(source), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        env={**__import__("os").environ, "CUTOUT_MODEL_HOME": str(model_home)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    theirs = _pixels(out.read_bytes())
    if not np.array_equal(ours, theirs):
        Image.fromarray(ours).save(artifacts / "refine-job.png")
        Image.fromarray(theirs).save(artifacts / "refine-cli.png")
    assert np.array_equal(ours, theirs)
    # and it is not rembg's cutout: the edge is refined, the colours are not premultiplied
    plain = finished(store, submit(store, storage, celery_app, data, {}), 300)
    assert plain.status == "succeeded", plain
    assert not np.array_equal(ours, _pixels(storage.get(plain.result["key"])))


def test_refine_is_not_below_exact_on_the_shared_truth(eval_dir: Path, model_home: Path) -> None:
    from worker.engine import Engine, decode_image
    from worker.eval.manifest import load_manifest
    from worker.eval.metrics import iou
    from worker.eval.runner import load_truth

    engine = Engine(model_home, threads=2)
    exact_scores, refined_scores = [], []
    for item in load_manifest(eval_dir / "gt" / "manifest.csv"):
        image = decode_image(item.image_path.read_bytes())
        truth = load_truth(item.mask_path)
        exact = np.asarray(engine.predict_mask(image, "u2net"))
        refined, _ = engine.refined(image)
        exact_scores.append(iou(exact, truth))
        refined_scores.append(iou(np.asarray(refined), truth))
    assert len(exact_scores) >= 40
    assert float(np.mean(refined_scores)) >= float(np.mean(exact_scores)), (
        np.mean(refined_scores),
        np.mean(exact_scores),
    )


def test_a_50_megapixel_photo_is_refined_within_the_job_bound(  # type: ignore[no-untyped-def]
    store, storage, celery_app, worker
) -> None:
    """refine adds ~80 MB and a copy of the photo 640 px wide, not a cost per pixel
    (docs/refine.md, Memory): a photo at the default CUTOUT_MAX_PIXELS is refined, not
    refused with image_too_large."""
    width, height = 10_000, 5_000
    yy, xx = np.ogrid[:height, :width]
    pixels = np.full((height, width, 3), 225, np.uint8)
    pixels[(xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (height / 3) ** 2] = (200, 30, 40)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    del pixels
    job = finished(
        store, submit(store, storage, celery_app, buffer.getvalue(), {"refine": True}), 600
    )
    assert job.status == "succeeded", job
    with Image.open(io.BytesIO(storage.get(job.result["key"]))) as picture:
        assert picture.size == (width, height)
        alpha = np.asarray(picture.getchannel("A"))
    assert alpha[height // 2, width // 2] == 255  # the disc
    assert alpha[0, 0] == 0  # the backdrop
