"""One render path: what ``cutout eval`` measures (:meth:`Engine.render_assessed`) and
:meth:`Engine.render` are the pixels a job gets (:meth:`Engine.process`, which the worker
and ``cutout remove`` call), catalogue options included. Real weights (u2netp).

Before, ``Engine.render`` went through a second pipeline that ignored ``roi``,
``crop_margin``, ``scale``, ``position``, ``shadow`` and background images.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shared.contract.options import parse_options

CASES: list[dict[str, Any]] = [
    {},
    {"roi": "0px 0px 50% 100%"},
    {"roi": "10% 10% 90% 60%", "mask_only": True},
    {"crop": True, "crop_margin": "10px 5% 10px 5%"},
    {"scale": "50%", "position": "0% 100%"},
    {"shadow": True},
    {"shadow": True, "bg_color": "#ffffff"},
    {"canvas": "200x120", "scale": "90%", "position": "center"},
    {"post_process": True, "roi": "0px 0px 100% 70%", "crop": True},
]


def photo() -> tuple[Image.Image, bytes]:
    image = Image.new("RGB", (320, 240), (200, 205, 210))
    draw = ImageDraw.Draw(image)
    draw.ellipse((90, 50, 230, 210), fill=(180, 40, 30))
    draw.rectangle((140, 20, 180, 60), fill=(40, 40, 40))
    out = io.BytesIO()
    image.save(out, "PNG")
    return image, out.getvalue()


def backdrop() -> bytes:
    image = Image.new("RGB", (160, 90), (20, 120, 40))
    ImageDraw.Draw(image).rectangle((0, 0, 80, 90), fill=(230, 200, 30))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def engine(model_home: Path):  # type: ignore[no-untyped-def]
    from worker.engine import Engine

    return Engine(model_home, threads=1)


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture.convert(picture.mode))


@pytest.mark.parametrize("values", CASES, ids=lambda v: ",".join(v) or "default")
def test_render_and_eval_give_the_jobs_pixels(engine, values: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    options = parse_options({"model": "u2netp", **values})
    image, data = photo()
    job = engine.process(data, options)
    rendered = engine.render(image, options)
    assessed, quality = engine.render_assessed(image, options)
    assert (rendered.width, rendered.height) == (job.width, job.height)
    np.testing.assert_array_equal(np.asarray(rendered), decoded(job.data))
    np.testing.assert_array_equal(np.asarray(assessed), decoded(job.data))
    assert quality is not None
    assert job.quality is not None
    assert quality.score == job.quality.score


def test_a_background_image_renders_as_in_a_job(engine) -> None:  # type: ignore[no-untyped-def]
    from worker.engine import decode_image

    options = parse_options({"model": "u2netp", "bg_upload_key": "uploads/t/backdrop.png"})
    image, data = photo()
    job = engine.process(data, options, background=backdrop())
    rendered = engine.render(image, options, decode_image(backdrop()))
    np.testing.assert_array_equal(np.asarray(rendered), decoded(job.data))
    assert np.asarray(rendered)[..., 3].min() == 255  # the backdrop shows everywhere


def test_roi_applies_to_what_eval_measures(engine) -> None:  # type: ignore[no-untyped-def]
    from worker.eval.methods import build_methods

    (method,) = build_methods(["u2netp"], ["roi=0px 0px 50% 100%"], [], [])
    image, _ = photo()
    picture, _ = engine.render_assessed(image, method.render_options())
    alpha = np.asarray(picture)
    assert alpha[:, 160:].max() == 0  # nothing of the subject right of the region
    assert alpha[:, :160].max() == 255
