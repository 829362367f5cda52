"""The quality score's contract pieces: the `score` option, CUTOUT_REVIEW_BELOW, and the
public `result.quality` shape, kept in step with worker/engine/quality.py."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from shared.contract.options import Options, parse_options
from shared.contract.settings import Settings, SettingsError, load_settings
from shared.contract.shapes.records import Quality, QualityFlag
from shared.errors import InvalidOption
from worker.engine import quality
from worker.outcome import quality_fields


def test_score_option_levels_and_errors() -> None:
    assert Options().score == "basic"
    assert parse_options({"score": " FULL "}).score == "full"
    assert parse_options({}).stored()["score"] == "basic"
    assert parse_options(parse_options({"score": "full"}).stored()).score == "full"
    with pytest.raises(InvalidOption) as caught:
        parse_options({"score": "best"})
    assert caught.value.extra["option"] == "score"
    assert "basic, full" in str(caught.value)


def test_review_threshold_setting() -> None:
    # the default is the threshold fitted with the model (docs/quality.md)
    assert Settings().review_below == quality.REVIEW_BELOW
    assert load_settings({"CUTOUT_REVIEW_BELOW": "0.7"}).review_below == 0.7
    for bad in ("1.5", "-0.1", "nan", "high"):
        with pytest.raises(SettingsError) as caught:
            load_settings({"CUTOUT_REVIEW_BELOW": bad})
        assert "CUTOUT_REVIEW_BELOW" in str(caught.value)


def test_public_flags_are_the_engine_flags() -> None:
    assert list(typing.get_args(QualityFlag)) == list(quality.FLAGS)


def test_quality_fields_mark_review_below_the_threshold() -> None:
    q = quality.Quality(0.8, ["uncertain_edges"], {"area": 0.2}, "full")
    fields = quality_fields(q, 0.85)
    assert fields == {"score": 0.8, "flags": ["uncertain_edges"], "review": True, "level": "full"}
    assert Quality.model_validate(fields).review is True
    assert quality_fields(q, 0.8)["review"] is False  # type: ignore[index]
    assert quality_fields(None, 0.85) is None
    with pytest.raises(ValidationError):
        Quality.model_validate(dict(fields, flags=["made_up"]))
