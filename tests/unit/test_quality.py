"""The quality score's features, flags and stored model on synthetic maps (no weights).

A map here stands for U²-Net's raw first output (320×320, 0..1); the photo is a red disc
on blue (or drawn from the map's own mask), so a right map agrees with its colours.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from worker.engine import quality, quality_model
from worker.engine.families import U2NetFamily

YY, XX = np.mgrid[0:320, 0:320].astype(np.float32)
FG, BG = np.array([220, 60, 40], np.float32), np.array([40, 120, 200], np.float32)


def edge(distance: np.ndarray, width: float) -> np.ndarray:
    """A logistic edge: 1 inside (distance > 0), ``width`` px soft."""
    return (1 / (1 + np.exp(-np.clip(distance / width, -60, 60)))).astype(np.float32)


def disc(radius: float = 90, width: float = 0.4, cx: float = 160, cy: float = 160) -> np.ndarray:
    return edge(radius - np.hypot(XX - cx, YY - cy), width)


def photo_of(mask: np.ndarray) -> np.ndarray:
    """An RGB photo, red subject on blue, from a boolean mask."""
    m = mask[..., None].astype(np.float32)
    return (m * FG + (1 - m) * BG).astype(np.uint8)


def pieces_map() -> np.ndarray:
    centres = [(50, 50), (160, 60), (270, 50), (60, 250), (170, 240), (260, 260)]
    return np.max([disc(25, 0.4, cx, cy) for cx, cy in centres], axis=0)


def test_a_clean_disc_scores_high_without_flags() -> None:
    prob = disc()
    result = quality.assess(prob, photo_of(prob >= 0.5))
    assert result.level == "basic"
    assert result.score >= max(0.85, quality.REVIEW_BELOW)
    assert result.flags == []
    assert result.features["pieces"] == 1
    assert result.features["border"] == 0


def test_a_clean_disc_with_an_agreeing_second_opinion_scores_high() -> None:
    prob = disc()
    result = quality.assess(prob, photo_of(prob >= 0.5), second=prob)
    assert result.level == "full"
    assert result.features["agree_iou"] == 1.0
    assert result.score >= max(0.85, quality.REVIEW_BELOW)
    assert "models_disagree" not in result.flags


@pytest.mark.parametrize(
    ("name", "prob", "flag"),
    [
        ("pieces", pieces_map(), "several_pieces"),
        ("frame", edge(200 - XX, 0.4) * edge(YY - 40, 0.4), "touches_frame"),
        ("soft", disc(width=25), "uncertain_edges"),
    ],
)
def test_suspicious_maps_score_lower_and_say_why(name: str, prob: np.ndarray, flag: str) -> None:
    # the photo shows one disc; the model's map is the suspicious one
    photo = photo_of(disc() >= 0.5)
    clean = quality.assess(disc(), photo)
    result = quality.assess(prob, photo)
    assert flag in result.flags, (name, result.flags, result.features)
    assert result.score < clean.score - 0.1
    assert result.score < quality.REVIEW_BELOW  # it goes on the review list


def test_mostly_soft_pixels_score_low() -> None:
    prob = disc(width=25)
    result = quality.assess(prob, photo_of(disc() >= 0.5))
    assert result.features["soft_share"] > 0.5
    assert result.score < quality.REVIEW_BELOW - 0.1


def test_a_second_opinion_that_disagrees_lowers_the_score_and_flags_it() -> None:
    prob = disc()
    photo = photo_of(prob >= 0.5)
    agree = quality.assess(prob, photo, second=prob)
    other = disc(60, 0.4, 90, 220)
    disagree = quality.assess(prob, photo, second=other)
    assert disagree.features["agree_iou"] < 0.3
    assert "models_disagree" in disagree.flags
    assert disagree.score < agree.score - 0.1


def test_an_empty_map_is_no_subject_and_scores_zero() -> None:
    result = quality.assess(np.full((320, 320), 0.01, np.float32), photo_of(XX < 0))
    assert result.flags == ["no_subject"]
    assert result.score == 0.0


def test_a_tiny_subject_is_flagged() -> None:
    prob = disc(radius=8)
    assert "tiny_subject" in quality.assess(prob, photo_of(prob >= 0.5)).flags


def test_scores_stay_within_0_and_1_and_repeat_exactly() -> None:
    rng = np.random.default_rng(26)
    for _ in range(5):
        prob = rng.random((320, 320)).astype(np.float32) ** rng.uniform(0.2, 5)
        photo = (rng.random((320, 320, 3)) * 255).astype(np.uint8)
        for second in (None, rng.random((320, 320)).astype(np.float32)):
            first = quality.assess(prob, photo, second=second)
            assert 0.0 <= first.score <= 1.0
            assert quality.assess(prob, photo, second=second) == first
            assert set(first.flags) <= set(quality.FLAGS)


def test_the_photo_may_be_pil_any_size_or_the_models_pixels() -> None:
    prob = disc()
    photo = photo_of(prob >= 0.5)
    big = Image.fromarray(photo).resize((960, 960), Image.Resampling.NEAREST)
    small = U2NetFamily.shrink(big)
    scores = [quality.assess(prob[None, None], source).score for source in (photo, big, small)]
    assert max(scores) - min(scores) < 0.05
    # a PIL photo is shrunk exactly as the model's pixels are (the score's training data)
    assert quality.assess(prob, big).features == quality.assess(prob, small).features


def test_the_model_input_is_not_a_photo() -> None:
    """rembg's input is divided by the photo's brightest pixel: read as a photo, a dim
    photo's colours would be brightened and its colour features change (a job once
    scored 4 of 44 composites differently from the fitted model this way)."""
    prob = disc()
    dim = (photo_of(prob >= 0.5).astype(np.float32) * 0.6).astype(np.uint8)
    batch = U2NetFamily.normalise(dim)
    with pytest.raises(ValueError, match="H×W×3"):
        quality.assess(prob, batch)


def test_the_second_opinion_is_the_mirrored_pass_mirrored_back() -> None:
    prob = disc(60, 0.4, 100, 160)  # off centre: the mirrored pass must be mirrored back
    photo = Image.fromarray(photo_of(prob >= 0.5))
    batch = U2NetFamily.preprocess(photo)
    seen: list[str] = []

    def infer(model: str, inputs: np.ndarray) -> np.ndarray:
        seen.append(model)
        # a perfect model of this scene: the subject where the input is red
        red = inputs[0, 0] > inputs[0, 2]
        return red[None, None].astype(np.float32)

    second = quality.second_opinion(batch, infer)
    result = quality.assess(prob[None, None], photo, second=second)
    assert seen == [quality.SECOND_MODEL]
    assert result.level == "full"
    assert result.features["agree_iou"] > 0.95
    assert quality.assess(prob[None, None], photo).level == "basic"


def test_the_stored_model_loads_and_matches_the_features() -> None:
    for level, names in (("basic", quality.BASIC), ("full", quality.BASIC + quality.AGREE)):
        fitted = quality_model.MODEL[level]
        n = len(fitted["features"])
        assert set(fitted["features"]) <= set(names)
        if "steps" in fitted:  # boosted stumps: one step function per feature
            assert len(fitted["steps"]) == n
            for step in fitted["steps"]:
                assert step["t"] == sorted(step["t"])
                assert len(step["v"]) == len(step["t"]) + 1
        else:  # a linear model
            assert len(fitted["mean"]) == len(fitted["scale"]) == len(fitted["coef"]) == n
        knots = fitted["calibration"]
        assert knots["x"] == sorted(knots["x"])
        assert all(0.0 <= y <= 1.0 for y in knots["y"])
        assert knots["y"] == sorted(knots["y"])
    assert set(quality_model.FLAG_THRESHOLDS) == set(quality.FLAGS)
    assert 0.5 <= quality.REVIEW_BELOW <= 0.95
