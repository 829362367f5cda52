"""The trainable U²-Net (worker/tune): same function as the pinned ONNX, export parity.

Needs the tune extra (torch); CI installs it (.ci/run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from worker.tune.export import TOLERANCE, check_parity, export_onnx  # noqa: E402
from worker.tune.net import from_onnx  # noqa: E402


@pytest.fixture(scope="module")
def u2netp_path(model_home: Path) -> Path:
    path = model_home / "u2netp.onnx"
    if not path.exists():
        pytest.skip("u2netp weights not fetched (cutout models fetch u2netp)")
    return path


def _photo_input() -> np.ndarray:
    from PIL import Image

    from testkit.vertical import sample
    from worker.engine.families import U2NetFamily

    photo, _ = sample(0, seed=5)
    assert isinstance(photo, Image.Image)
    return U2NetFamily.preprocess(photo)


def test_torch_equals_onnx_runtime(u2netp_path: Path) -> None:
    import onnxruntime as ort

    model = from_onnx("u2netp", u2netp_path)
    x = _photo_input()
    session = ort.InferenceSession(str(u2netp_path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"input.1": x})
    with torch.no_grad():
        theirs = model(torch.from_numpy(x))
    assert len(ours) == len(theirs) == 7
    worst = max(float(np.abs(a - b.numpy()).max()) for a, b in zip(ours, theirs, strict=True))
    # ORT's fused kernels sum in another order: 1.4e-4 seen on a photo, far below a grey level
    assert worst < TOLERANCE


def test_export_keeps_the_io_and_the_outputs(u2netp_path: Path) -> None:
    model = from_onnx("u2netp", u2netp_path)
    with torch.no_grad():  # change the weights, so the check compares a trained model
        model.side1.bias.add_(0.5)
    data = export_onnx(model)  # raises unless input.1 / 1959..1965 as the pinned file
    assert check_parity(model, data, [_photo_input()]) <= TOLERANCE


def test_a_wrong_variant_is_refused(u2netp_path: Path) -> None:
    from worker.tune.net import U2Net, load_onnx_weights

    with pytest.raises(ValueError, match="expects"):
        load_onnx_weights(U2Net("u2net"), u2netp_path)


def test_cuda_absent_is_said_clearly() -> None:
    from worker.tune.train import TuneError, pick_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TuneError, match="no usable CUDA device") as caught:
        pick_device("cuda")
    assert caught.value.exit_code == 2


def test_split_is_seeded_and_disjoint() -> None:
    from worker.tune.train import split_items

    items = list(range(10))
    train, val = split_items(items, 0.2, seed=3)  # type: ignore[arg-type]
    assert len(val) == 2
    assert not set(train) & set(val)
    assert split_items(items, 0.2, seed=3) == (train, val)  # type: ignore[arg-type]


def test_a_model_no_better_than_its_base_is_not_registered(
    u2netp_path: Path, tmp_path: Path
) -> None:
    """lr=0 keeps the base's weights: validation ties the base, so nothing is written."""
    from testkit.vertical import write
    from worker.tune.train import TuneConfig, TuneError, tune

    manifests = write(tmp_path / "data", 3, seed=4, test_share=0.34)
    home = tmp_path / "models"
    home.mkdir()
    (home / "u2netp.onnx").symlink_to(u2netp_path)
    said: list[str] = []
    config = TuneConfig(
        manifest=manifests["all"],
        base="u2netp",
        name="same",
        home=home,
        val_split=0.34,
        layers="head",
        epochs=1,
        batch_size=2,
        lr=0.0,
        max_steps=1,
    )
    with pytest.raises(
        TuneError, match=r"not registered: no epoch count beat u2netp .*ΔIoU \+0\.0000"
    ):
        tune(config, say=said.append)
    assert not (home / "custom" / "same.onnx").exists()
    assert any(line.startswith("base on validation: IoU") for line in said)
