"""Batched inference on the real weights: N images in one call give, for each image, the
very same floats and mask as that image alone (CPU, one ONNX Runtime thread)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from worker.engine import Engine


def _pictures() -> list[Image.Image]:
    """Four different pictures: sizes, backgrounds and subjects differ."""
    rng = np.random.default_rng(7)
    pictures = []
    for i, (w, h) in enumerate([(320, 320), (480, 270), (201, 333), (640, 480)]):
        ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        base = rng.integers(0, 255, 3).astype(np.float32)
        pixels = (base * ramp + rng.normal(0, 12, (h, w, 3))).clip(0, 255).astype(np.uint8)
        picture = Image.fromarray(pixels, "RGB")
        draw = ImageDraw.Draw(picture)
        box = (w // 5 + i * 7, h // 4, w - w // 4, h - h // 6 - i * 5)
        draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        draw.rectangle((w // 3, h // 2, w // 2, h - 10), fill=(20 * i, 200, 90))
        pictures.append(picture)
    return pictures


@pytest.mark.parametrize("model", ["u2netp", "u2net"])
def test_batch_of_four_is_bit_identical_to_each_alone(model_home: Path, model: str) -> None:
    engine = Engine(model_home, threads=1)
    pictures = _pictures()

    together = engine.predict_outputs(pictures, model)
    assert together.shape[0] == 4
    for i, picture in enumerate(pictures):
        alone = engine.predict_outputs([picture], model)
        assert np.array_equal(together[i : i + 1], alone), f"raw output {i} differs"

    masks = engine.predict_masks(pictures, model)
    for picture, mask in zip(pictures, masks, strict=True):
        single = engine.predict_mask(picture, model)
        assert mask.size == picture.size
        assert mask.mode == "L"
        assert np.array_equal(np.asarray(mask), np.asarray(single))
    # and a mask that is not trivially empty: the test sees real model output
    assert any(np.asarray(m).std() > 0 for m in masks)
