"""Custom models through the real service: tune → push → a real worker serves model=NAME.

Real parts: the session's redis-server and SeaweedFS, a real `cutout api` with API keys,
the session's real `cutout worker`, the real u2netp weights. The tune itself is tiny (its
defaults, cross-validation included, but 2 folds and one step a run on four generated
photos, ``--allow-worse``): this tests the path, bench/tune_real.py measures the gain. The tune
needs the tune extra (torch), which CI installs; the registry and isolation tests need no
torch (their "custom" model is u2netp's graph with another doc string, so another sha256).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.integration.conftest import ApiProcess, http, multipart, running_api, wait_for

KEYS = {"alice": "key-alice-0123456789", "bob": "key-bob-0123456789", "ops": "key-ops-0123456789"}


@pytest.fixture(scope="module")
def keyed_api(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    env = dict(
        service_env,
        CUTOUT_API_KEYS=",".join(f"{t}:{k}" for t, k in KEYS.items()),
        CUTOUT_OPERATOR_TENANTS="ops",
    )
    with running_api(env, tmp_path_factory.mktemp("api-models") / "api.log") as api:
        yield api


def _auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def _variant(model_home: Path, tag: str) -> bytes:
    """u2netp's graph with another doc string: valid I/O, its own sha256."""
    import onnx

    model = onnx.load(str(model_home / "u2netp.onnx"))
    model.doc_string = f"test variant {tag} {os.getpid()}"
    return model.SerializeToString()


def _record(name: str, data: bytes) -> dict[str, object]:
    from shared.onnx.modelfile import sha256_of

    return {"name": name, "base": {"name": "u2netp"}, "sha256": sha256_of(data)}


def _push(api: ApiProcess, tenant: str, name: str, data: bytes, scope: str = "") -> tuple:  # type: ignore[type-arg]
    fields = {"scope": scope} if scope else {}
    body, ctype = multipart(
        fields,
        {
            "record": ("record.json", json.dumps(_record(name, data)).encode(), "application/json"),
            "file": ("model.onnx", data, "application/octet-stream"),
        },
    )
    status, _, answer = http(
        "POST", api.url + "/v1/models", body, {**_auth(tenant), "Content-Type": ctype}
    )
    return status, json.loads(answer or b"{}")


def _photo() -> bytes:
    from testkit.vertical import sample

    photo, _ = sample(3, seed=9)
    out = io.BytesIO()
    photo.save(out, "PNG")
    return out.getvalue()


def _submit(api: ApiProcess, tenant: str, model: str, data: bytes) -> tuple[int, dict]:  # type: ignore[type-arg]
    body, ctype = multipart({"model": model}, {"image": ("w.png", data, "image/png")})
    status, _, answer = http(
        "POST", api.url + "/v1/jobs", body, {**_auth(tenant), "Content-Type": ctype}
    )
    return status, json.loads(answer)


def _finished(api: ApiProcess, tenant: str, job_id: str) -> dict:  # type: ignore[type-arg]
    def done() -> dict | None:  # type: ignore[type-arg]
        _, _, raw = http("GET", f"{api.url}/v1/jobs/{job_id}", None, _auth(tenant))
        job = json.loads(raw)
        return job if job["status"] in ("succeeded", "failed") else None

    return wait_for(done, timeout=600, interval=0.5)  # type: ignore[no-any-return]


def _names(api: ApiProcess, tenant: str) -> list[str]:
    status, _, raw = http("GET", api.url + "/v1/models", None, _auth(tenant))
    assert status == 200
    return [m["name"] for m in json.loads(raw)["models"]]


def test_tenant_models_are_private_and_global_ones_shared(keyed_api, model_home, worker) -> None:  # type: ignore[no-untyped-def]
    data = _variant(model_home, "alice")
    status, body = _push(keyed_api, "alice", "alice-watches", data)
    assert status == 201, body
    assert body["scope"] == "tenant:alice"
    assert "alice-watches" in _names(keyed_api, "alice")
    assert "alice-watches" not in _names(keyed_api, "bob")
    # bob can neither use nor delete it: refused at submit, never a failed job later
    status, problem = _submit(keyed_api, "bob", "alice-watches", _photo())
    assert (status, problem["code"]) == (422, "invalid_option")
    status, _, _ = http("DELETE", keyed_api.url + "/v1/models/alice-watches", None, _auth("bob"))
    assert status == 404
    # only an operator tenant registers global models; then everyone sees them
    status, problem = _push(keyed_api, "alice", "shared-watches", data, scope="global")
    assert (status, problem["code"]) == (403, "forbidden")
    status, body = _push(keyed_api, "ops", "shared-watches", data, scope="global")
    assert status == 201, body
    assert "shared-watches" in _names(keyed_api, "bob")
    # removed: refused at submit again
    status, _, _ = http(
        "DELETE", keyed_api.url + "/v1/models/shared-watches?scope=global", None, _auth("ops")
    )
    assert status == 204
    status, problem = _submit(keyed_api, "bob", "shared-watches", _photo())
    assert (status, problem["code"]) == (422, "invalid_option")


def test_a_model_with_other_io_is_refused(keyed_api, model_home) -> None:  # type: ignore[no-untyped-def]
    import onnx

    model = onnx.load_model_from_string(_variant(model_home, "io"))
    model.graph.output.pop()
    status, problem = _push(keyed_api, "alice", "broken", model.SerializeToString())
    assert (status, problem["code"]) == (422, "invalid_model")


def test_a_file_that_does_not_match_its_sha256_is_never_loaded(  # type: ignore[no-untyped-def]
    keyed_api, model_home, storage, worker
) -> None:
    data = _variant(model_home, "tampered")
    status, body = _push(keyed_api, "alice", "tampered", data)
    assert status == 201, body
    # someone swaps the stored bytes (another valid model) behind the registry's back
    from shared.stores.models import file_key

    storage.put(
        file_key("tenant:alice", "tampered", body["sha256"]),
        _variant(model_home, "other"),
        "application/octet-stream",
    )
    status, job = _submit(keyed_api, "alice", "tampered", _photo())
    assert status == 202, job
    job = _finished(keyed_api, "alice", job["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "model_integrity"
    assert "does not match" in job["error"]["message"]


def tiny_tune(manifest: Path, home: Path, name: str) -> subprocess.CompletedProcess[str]:
    """`cutout tune` with its defaults but the base u2netp, 2 folds and 1 step (CI's
    time), registered whatever its gate says (one step cannot beat the base)."""
    tiny = ["--base", "u2netp", "--folds", "2", "--max-steps", "1", "--threads", "1"]
    where = ["--manifest", str(manifest), "--model-home", str(home)]
    return subprocess.run(
        [sys.executable, "-m", "cutout", "tune", *where, "--name", name, "--allow-worse", *tiny],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, model_home: Path) -> tuple[Path, str]:
    """A tiny tune into its own model home: (home, name)."""
    pytest.importorskip("torch")
    from testkit.vertical import write

    work = tmp_path_factory.mktemp("tune")
    manifests = write(work / "data", 4, seed=11, test_share=0.5)
    home = work / "models"
    home.mkdir()
    (home / "u2netp.onnx").symlink_to(model_home / "u2netp.onnx")
    name = f"tiny-{os.getpid()}"
    done = tiny_tune(manifests["all"], home, name)
    assert done.returncode == 0, done.stderr[-3000:]
    # the defaults but 2 folds (CI's time): cross-validation inside the 4 photos, then a
    # run on all of them, with the progress of every run on stderr
    assert "2-fold cross-validation" in done.stderr
    assert "fold 2/2  epoch 1/3  step 2/3" in done.stderr
    assert "training on all 4 photos" in done.stderr
    return home, name


def test_tiny_tune_is_served_by_the_worker_like_cutout_remove(  # type: ignore[no-untyped-def]
    tuned, keyed_api, worker, tmp_path: Path
) -> None:
    home, name = tuned
    record = json.loads((home / "custom" / f"{name}.json").read_text())
    for key in ("base", "manifest", "hyperparameters", "versions", "validation", "sha256"):
        assert key in record
    validation = record["validation"]
    assert validation["method"] == "cross-validation"
    assert [fold["n"] for fold in validation["folds"]] == [2, 2]
    assert validation["base"]["n"] == 4  # every photo validated once
    hyper = record["hyperparameters"]
    assert (hyper["folds"], hyper["layers"], hyper["ema"]) == (2, "decoder", 0.9)
    env = dict(os.environ, CUTOUT_MODEL_HOME=str(home), CUTOUT_API_KEY=KEYS["alice"])
    pushed = subprocess.run(
        [sys.executable, "-m", "cutout", "models", "push", name, "--api", keyed_api.url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert pushed.returncode == 0, pushed.stderr
    photo = _photo()
    status, job = _submit(keyed_api, "alice", name, photo)
    assert status == 202, job
    job = _finished(keyed_api, "alice", job["id"])
    assert job["status"] == "succeeded", job
    status, _, served = http(
        "GET", f"{keyed_api.url}/v1/jobs/{job['id']}/result", None, _auth("alice")
    )
    assert status == 200
    source = tmp_path / "in.png"
    source.write_bytes(photo)
    local = tmp_path / "out.png"
    removed = subprocess.run(
        [
            sys.executable,
            "-m",
            "cutout",
            "remove",
            str(source),
            str(local),
            "--model",
            name,
            "--threads",
            "1",
            "-q",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert removed.returncode == 0, removed.stderr
    a = np.asarray(Image.open(io.BytesIO(served)))
    b = np.asarray(Image.open(local))
    assert a.shape == b.shape
    assert np.array_equal(a, b)
    # and it differs from its base somewhere (it is really the tuned file that ran)
    base = tmp_path / "base.png"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cutout",
            "remove",
            str(source),
            str(base),
            "--model",
            "u2netp",
            "--threads",
            "1",
            "-q",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    assert not np.array_equal(a, np.asarray(Image.open(base)))
