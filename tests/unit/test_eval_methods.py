"""``cutout eval``'s columns: which options it measures. It renders through the job's
path (worker/engine/render.py), so an option that moves, resizes or covers the subject
would make the alpha incomparable with the truth: refused, naming the option."""

from __future__ import annotations

import pytest

from shared.errors import InvalidOption
from worker.eval.methods import build_methods

REFUSED = [
    ("crop=true", "crop"),
    ("crop_margin=10px", "crop_margin"),
    ("canvas=100x100", "canvas"),
    ("scale=50%", "scale"),
    ("position=center", "position"),
    ("max_megapixels=1", "max_megapixels"),
    ("shadow=true", "shadow"),
    ("bg_color=#ffffff", "bg_color"),
    ("bg_image_url=https://example.com/b.jpg", "bg_image_url"),
    ("bg_upload_key=uploads/t/b.png", "bg_upload_key"),
]


@pytest.mark.parametrize(("option", "name"), REFUSED)
def test_options_that_change_geometry_or_opacity_are_refused(option: str, name: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        build_methods(["u2net"], [option], [], [])
    assert caught.value.extra["option"] == name
    assert "cannot be compared with the truth" in caught.value.message


def test_roi_is_measured_as_a_job_applies_it() -> None:
    (method,) = build_methods(["u2net"], ["roi=0px 0px 50% 100%"], [], [])
    assert method.options is not None
    assert method.options.roi
    assert method.render_options().mask_only
