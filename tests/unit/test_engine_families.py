"""U²-Net pre- and post-processing against rembg's arithmetic, without the model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from worker.engine.families import FAMILIES, U2NetFamily
from worker.engine.models import MODEL_SPECS

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def rembg_normalize(image: Image.Image) -> np.ndarray:
    """rembg 2.0.86's BaseSession.normalize, in float64 as it does it."""
    im = image.convert("RGB").resize((320, 320), Image.Resampling.LANCZOS)
    ary = np.array(im)
    ary = ary / max(np.max(ary), 1e-6)
    tmp = np.zeros((ary.shape[0], ary.shape[1], 3))
    for c in range(3):
        tmp[:, :, c] = (ary[:, :, c] - MEAN[c]) / STD[c]
    return np.expand_dims(tmp.transpose((2, 0, 1)), 0).astype(np.float32)


def test_every_model_has_a_family() -> None:
    for spec in MODEL_SPECS.values():
        assert spec.family in FAMILIES


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "CMYK"])
def test_preprocess_matches_rembg_in_float32(mode: str) -> None:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 200, (90, 130, 3), dtype=np.uint8)).convert(mode)
    ours = U2NetFamily.preprocess(image)
    assert ours.shape == (1, 3, 320, 320)
    assert ours.dtype == np.float32
    assert ours.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(ours, rembg_normalize(image), atol=2e-6)


def test_preprocess_of_a_black_image_does_not_divide_by_zero() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = U2NetFamily.preprocess(Image.new("RGB", (10, 10)))
    assert np.isfinite(batch).all()


def test_postprocess_min_max_normalises_and_truncates() -> None:
    output = np.zeros((1, 1, 320, 320), np.float32)
    output[0, 0, :, 160:] = 2.0
    output[0, 0, 0, 0] = 1.999  # (1.999 / 2) * 255 = 254.87..., truncated to 254
    mask = U2NetFamily.postprocess(output, (320, 320))
    assert mask.mode == "L"
    assert mask.size == (320, 320)
    p = np.asarray(mask)
    assert p[0, 0] == 254
    assert p[5, 5] == 0
    assert p[5, 300] == 255


def test_postprocess_resizes_to_the_image() -> None:
    output = np.random.default_rng(2).random((1, 1, 320, 320), dtype=np.float32)
    assert U2NetFamily.postprocess(output, (1000, 667)).size == (1000, 667)


@pytest.mark.parametrize("value", [0.0, 0.5, np.nan])
def test_constant_output_gives_an_empty_mask_not_nan(value: float) -> None:
    output = np.full((1, 1, 320, 320), value, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rembg warns (0/0) here and yields garbage
        mask = U2NetFamily.postprocess(output, (50, 40))
    assert mask.size == (50, 40)
    assert np.asarray(mask).max() == 0
