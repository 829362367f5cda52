"""Parity with rembg 2.0.86: our cutouts of ../shared/eval/photos against rembg's own.

For every photo and both models, our alpha against the stored rembg output: max absolute
difference ≤ 2 and mean ≤ 0.1 (of 255); rembg run twice differs by up to 1. Colours are
held to the same bound (both are Pillow's composite of the same pixels). A failure saves
ours, rembg's and the difference under test-artifacts/parity/.

Also here, with the real weights: the engine's session handling (one per model, the
providers it reports, CUDA refused where absent) and every output format end to end.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.contract.options import Options, parse_options
from shared.errors import FastModeUnavailable

MODELS = ("u2net", "u2netp")
MAX_DIFF = 2
MEAN_DIFF = 0.1


@pytest.fixture(scope="module")
def engine(model_home: Path):  # type: ignore[no-untyped-def]
    """One engine for the module: each model's session is created once."""
    from worker.engine import Engine
    from worker.engine.models import MODEL_SPECS, verify

    missing = [
        f"{name} ({problem})"
        for name in MODELS
        if (problem := verify(MODEL_SPECS[name], model_home / MODEL_SPECS[name].filename))
    ]
    if missing:
        pytest.skip(
            f"model weights not in {model_home}: {', '.join(missing)}; run `cutout models fetch`"
        )
    return Engine(model_home, threads=2)


def photos() -> list[Path]:
    from tests.conftest import EVAL_DIR

    return sorted((EVAL_DIR / "photos").glob("*.jpg"))


def _ids() -> list[str]:
    return [p.stem for p in photos()] or ["no-photos"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("photo_name", _ids())
def test_alpha_matches_rembg(
    engine,  # type: ignore[no-untyped-def]
    eval_dir: Path,
    artifacts: Path,
    model: str,
    photo_name: str,
) -> None:
    photo = eval_dir / "photos" / f"{photo_name}.jpg"
    reference_path = photo.with_name(f"{photo_name}.{model}.png")
    if not photo.exists() or not reference_path.exists():
        pytest.skip(f"{photo.name} or its {model} reference is not in {eval_dir}")
    result = engine.process(photo.read_bytes(), Options(model=model))
    assert result.content_type == "image/png"
    ours = Image.open(io.BytesIO(result.data))
    reference = Image.open(reference_path)
    assert ours.mode == reference.mode == "RGBA"
    assert ours.size == reference.size == (result.width, result.height)
    a, b = np.asarray(ours).astype(int), np.asarray(reference).astype(int)
    alpha_diff = np.abs(a[..., 3] - b[..., 3])
    colour_diff = np.abs(a[..., :3] - b[..., :3])
    problems = []
    if alpha_diff.max() > MAX_DIFF or alpha_diff.mean() > MEAN_DIFF:
        problems.append(f"alpha max {alpha_diff.max()} mean {alpha_diff.mean():.4f}")
    if colour_diff.max() > MAX_DIFF or colour_diff.mean() > MEAN_DIFF:
        problems.append(f"colour max {colour_diff.max()} mean {colour_diff.mean():.4f}")
    if problems:
        folder = artifacts / "parity"
        folder.mkdir(exist_ok=True)
        ours.save(folder / f"{photo_name}.{model}.ours.png")
        reference.save(folder / f"{photo_name}.{model}.rembg.png")
        scaled = np.clip(alpha_diff * 40, 0, 255).astype(np.uint8)
        Image.fromarray(scaled).save(folder / f"{photo_name}.{model}.alpha-diff-x40.png")
        pytest.fail(f"{photo_name} {model}: " + "; ".join(problems) + f" (images in {folder})")
    # the same subject by IoU of alpha >= 128, as eval/README.md suggests
    ours_fg, ref_fg = a[..., 3] >= 128, b[..., 3] >= 128
    union = (ours_fg | ref_fg).sum()
    assert union == 0 or (ours_fg & ref_fg).sum() / union > 0.999


def test_predict_mask_is_the_cutouts_alpha(engine, eval_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from worker.engine import decode_image

    image = decode_image((eval_dir / "photos" / "car-1.jpg").read_bytes())
    mask = engine.predict_mask(image, "u2netp")
    assert mask.mode == "L"
    assert mask.size == image.size
    cutout = engine.render(image, Options(model="u2netp"))
    np.testing.assert_array_equal(np.asarray(cutout.getchannel("A")), np.asarray(mask))


def test_one_session_per_model(engine) -> None:  # type: ignore[no-untyped-def]
    engine.warm(["u2netp"])
    assert engine.session("u2netp") is engine.session("u2netp")
    assert engine.session("u2netp") is not engine.session("u2net")
    assert engine.providers("u2netp") == ["CPUExecutionProvider"]
    options = engine.session("u2netp").get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.inter_op_num_threads == 1


def test_cuda_is_refused_where_it_is_not_active(model_home: Path, engine) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    from worker.engine import DeviceUnavailable, Engine

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has onnxruntime's CUDA provider")
    with pytest.raises(DeviceUnavailable, match="CUDA"):
        Engine(model_home, device="cuda").warm(["u2netp"])


@pytest.mark.parametrize(
    ("values", "content_type", "mode"),
    [
        ({}, "image/png", "RGBA"),
        ({"format": "webp"}, "image/webp", "RGBA"),
        ({"format": "jpeg", "bg_color": "#ffffff"}, "image/jpeg", "RGB"),
        ({"mask_only": True}, "image/png", "L"),
        ({"mask_only": True, "format": "jpeg"}, "image/jpeg", "L"),
        ({"crop": True, "margin": 4}, "image/png", "RGBA"),
        ({"canvas": "300x200", "bg_color": "#eeeeee"}, "image/png", "RGBA"),
    ],
)
def test_process_end_to_end(
    engine,  # type: ignore[no-untyped-def]
    eval_dir: Path,
    values: dict,
    content_type: str,
    mode: str,
) -> None:
    options = parse_options({"model": "u2netp", **values})
    result = engine.process((eval_dir / "photos" / "car-1.jpg").read_bytes(), options)
    assert result.content_type == content_type
    out = Image.open(io.BytesIO(result.data))
    assert out.mode == mode
    assert out.size == (result.width, result.height)
    stages = {"decode", "preprocess", "inference", "score", "postprocess", "encode"}
    assert set(result.timings) == stages
    assert result.quality is not None  # every job is scored (basic by default)
    assert 0.0 <= result.quality.score <= 1.0
    if values.get("canvas"):
        assert out.size == (300, 200)
    if values.get("crop"):
        assert out.width < 480 or out.height < 360


def test_fast_mode_without_a_built_fast_model_is_refused(eval_dir: Path, tmp_path: Path) -> None:
    # no fast extra, or no fast model built in this home: a clear error, never exact mode
    from worker.engine import Engine

    with pytest.raises(FastModeUnavailable):
        Engine(tmp_path).process(
            (eval_dir / "photos" / "car-1.jpg").read_bytes(), Options(fast=True)
        )
