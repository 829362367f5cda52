"""The quality score a job gets is computed on the pixels the score was fitted on: the
photo shrunk to the model's 320×320 (LANCZOS, /255), not the model's normalised input,
which rembg divides by the photo's brightest pixel. Real weights (u2netp)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from shared.contract.options import parse_options
from worker.engine import Engine, quality
from worker.engine.families import U2NetFamily


def dim_photo() -> tuple[Image.Image, bytes]:
    """A product-like photo whose brightest pixel is well below 255."""
    image = Image.new("RGB", (400, 300), (150, 150, 140))
    draw = ImageDraw.Draw(image)
    draw.ellipse((120, 60, 280, 240), fill=(40, 90, 150))
    draw.rectangle((180, 20, 220, 70), fill=(120, 60, 40))
    out = io.BytesIO()
    image.save(out, "PNG")
    return image, out.getvalue()


def test_a_jobs_score_is_the_fitted_models_score_of_its_map(model_home: Path) -> None:
    engine = Engine(model_home, threads=1)
    image, data = dim_photo()
    options = parse_options({"model": "u2netp"})
    result = engine.process(data, options)
    assert result.quality is not None
    output = engine.predict_outputs([image], "u2netp")
    expected = quality.assess(output, U2NetFamily.shrink(image))
    assert result.quality.features == expected.features
    assert result.quality.score == expected.score
    # the normalised input, read back as a photo, is brighter: the colour features differ
    batch = U2NetFamily.preprocess(image)[0].transpose(1, 2, 0)
    brightened = batch * np.asarray(U2NetFamily.std) + np.asarray(U2NetFamily.mean)
    assert brightened.max() > 0.99 > 150 / 255
    # and eval scores what the job scores, from the same one inference
    picture, assessed = engine.render_assessed(image, options)
    assert assessed is not None
    assert assessed.score == result.quality.score
    assert picture.size == image.size
