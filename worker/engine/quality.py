"""How likely a cutout is to be wrong: a score, flags and the features behind them.

Computed from what a job already has: the model's raw first output (1×1×320×320 or
320×320, before rembg's min-max normalisation and resize) and the photo (PIL, or an H×W×3
array: best the model's own 320×320 uint8 pixels, ``U2NetFamily.shrink``, which the score
was fitted on; not the normalised model input, which rembg divides by the photo's
brightest pixel), optionally with a second opinion's raw map (``full``). One call::

    quality = assess(output, photo)                       # basic
    quality = assess(output, photo, second=second_map)    # full

``Quality.score`` (0–1) is an estimate of the cutout's IoU against a perfect mask: a sum
of per-feature step functions (boosted stumps, or a linear model) over the features
(:data:`BASIC` / :data:`FULL` names) and an isotonic calibration, both fitted by
``bench/quality.py --fit`` on generated truth only and stored in
worker/engine/quality_model.py. ``Quality.flags`` are stable codes (:data:`FLAGS`,
documented in docs/quality.md), their thresholds fitted the same way. Only numpy and
OpenCV (both engine dependencies); about 3 ms at 320×320.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np
from PIL import Image

from worker.engine import quality_model

LEVELS = ("basic", "full")
#: the second opinion of ``full``: this model's pass over the mirrored photo (chosen on the
#: training split among u2netp, mirrored u2netp, both, and u2net at 224 px; docs/quality.md)
SECOND_MODEL = "u2netp"
#: the default of the review threshold (``review`` when ``score`` is below it), chosen on
#: the generated train split (docs/quality.md)
REVIEW_BELOW: float = quality_model.REVIEW_BELOW
#: flag code → what it says (docs/quality.md); the order flags are reported in
FLAGS: dict[str, str] = {
    "no_subject": "the model found nothing to cut out",
    "tiny_subject": "the subject covers a very small part of the photo",
    "several_pieces": "the cutout is in several separate pieces",
    "touches_frame": "the cutout runs into the photo's edges",
    "uncertain_edges": "the model is unsure over a wide band around the subject",
    "low_contrast": "subject and background have nearly the same colour at the edge",
    "models_disagree": "a second model's cutout differs (full only)",
}
#: the features of one map and its photo, and those a second opinion adds
BASIC = (
    "raw_max", "area", "soft_share", "soft_width", "uncertainty", "weak_inside", "pieces",
    "largest_share", "holes", "border", "sides", "compactness", "edge_align", "contrast",
    "colour_sep", "colour_conflict", "inside_mean",
)  # fmt: skip
AGREE = ("agree_iou", "agree_mad")
_K3 = np.ones((3, 3), np.uint8)


@dataclasses.dataclass(frozen=True)
class Quality:
    """``score``: estimated IoU, 0–1, higher is more likely right; ``flags``: codes of
    :data:`FLAGS`; ``features``: the measurements (for reports and the bench)."""

    score: float
    flags: list[str]
    features: dict[str, float]
    level: str


def normalised(output: np.ndarray) -> np.ndarray:
    """The 2-D map of a model's raw output, min-max normalised to 0..1 as rembg does
    (a constant output gives zeros)."""
    raw = np.asarray(output, np.float32)
    raw = raw.reshape(raw.shape[-2:])
    lo, hi = float(raw.min()), float(raw.max())
    if not np.isfinite(hi - lo) or hi <= lo:
        return np.zeros(raw.shape, np.float32)
    return (raw - lo) / np.float32(hi - lo)


def photo_pixels(photo: Any, shape: tuple[int, int]) -> np.ndarray:
    """The photo as an ``shape`` (h, w) × 3 float32 array in 0..1: from a PIL image or an
    H×W×3 array (uint8, or floats in 0..1; any size)."""
    if isinstance(photo, Image.Image):
        # LANCZOS, as the model's input is made: the pixels the score was fitted on
        rgb = photo if photo.mode == "RGB" else photo.convert("RGB")
        if rgb.size != (shape[1], shape[0]):
            rgb = rgb.resize((shape[1], shape[0]), Image.Resampling.LANCZOS)
        return np.asarray(rgb, np.float32) / 255.0
    source = np.asarray(photo)
    pixels = source.astype(np.float32)
    if pixels.ndim != 3:
        raise ValueError(f"a photo is H×W×3, got shape {pixels.shape}")
    if source.dtype == np.uint8:
        pixels /= 255.0
    pixels = np.ascontiguousarray(pixels[..., :3], np.float32)
    if pixels.shape[:2] != shape:
        pixels = np.asarray(
            cv2.resize(pixels, (shape[1], shape[0]), interpolation=cv2.INTER_AREA), np.float32
        )
    return pixels


def _pieces(mask: np.ndarray) -> tuple[float, float, float]:
    """(significant pieces, largest piece's share, holes' share) of a boolean mask."""
    total = int(np.count_nonzero(mask))
    if total == 0:
        return 0.0, 0.0, 0.0
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    pieces = float(np.count_nonzero(areas >= max(0.02 * total, 4)))
    inverse = (~mask).view(np.uint8)
    count, labels, bstats, _ = cv2.connectedComponentsWithStats(inverse, connectivity=4)
    outer = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    holes = sum(int(bstats[i, cv2.CC_STAT_AREA]) for i in range(1, count) if i not in outer)
    return pieces, float(areas.max()) / total, holes / (total + holes)


def _frame(mask: np.ndarray) -> tuple[float, float]:
    """(share of the frame's pixels inside the mask, sides touched over 2% of their length)."""
    sides = (mask[0], mask[-1], mask[:, 0], mask[:, -1])
    shares = [float(np.count_nonzero(s)) / s.size for s in sides]
    return float(np.mean(shares)), float(sum(s > 0.02 for s in shares))


def _side_colour(mask: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Each pixel's mean colour over the ``mask`` pixels of its 9×9 window."""
    weight = mask.astype(np.float32)
    total = cv2.blur(weight, (9, 9))[..., None] + 1e-6
    return np.asarray(cv2.blur(rgb * weight[..., None], (9, 9)) / total)


def _edges(mask: np.ndarray, rgb: np.ndarray) -> tuple[float, float]:
    """(edge alignment, colour contrast) along the mask's boundary: the photo's gradient
    on the boundary over its mean in a ±4 px band, and the distance between the mean
    colours just inside and just outside (0..√3)."""
    m8 = mask.view(np.uint8)
    boundary = cv2.dilate(m8, _K3) != cv2.erode(m8, _K3)
    if not boundary.any():
        return 0.0, 0.0
    band = cv2.dilate(m8, _K3, iterations=4) != cv2.erode(m8, _K3, iterations=4)
    gray = rgb.mean(axis=2)
    grad = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    align = float(grad[boundary].mean() / (grad[band].mean() + 1e-6))
    inside, outside = _side_colour(mask, rgb), _side_colour(~mask, rgb)
    contrast = float(np.linalg.norm(inside[boundary] - outside[boundary], axis=1).mean())
    return align, contrast


def _colours(mask: np.ndarray, rgb: np.ndarray) -> tuple[float, float]:
    """(separability, conflict) of the photo's colours under the mask: with histograms of
    the colours inside and outside (8 levels a channel), how surely a pixel's colour tells
    its side (0..1), and the share of pixels whose colour says the other side."""
    total = int(np.count_nonzero(mask))
    if total == 0 or total == mask.size:
        return 0.0, 0.0
    q = np.minimum((rgb * 8).astype(np.int32), 7)
    code = (q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2]).ravel()
    flat = mask.ravel()
    inside = np.bincount(code[flat], minlength=512) / total
    outside = np.bincount(code[~flat], minlength=512) / (mask.size - total)
    posterior = (inside / (inside + outside + 1e-12))[code]
    separability = float(np.abs(posterior - 0.5).mean() * 2)
    conflict = float(np.count_nonzero((posterior >= 0.5) != flat)) / mask.size
    return separability, conflict


def basic_features(output: np.ndarray, photo: Any) -> dict[str, float]:
    """The features of one map and its photo (see docs/quality.md for each)."""
    raw = np.asarray(output, np.float32).reshape(np.shape(output)[-2:])
    prob = normalised(raw)
    mask = prob >= 0.5
    total = int(np.count_nonzero(mask))
    soft = np.count_nonzero((prob > 0.05) & (prob < 0.95))
    m8 = mask.view(np.uint8)
    perimeter = int(np.count_nonzero(m8 != cv2.erode(m8, _K3)))
    pieces, largest, holes = _pieces(mask)
    border, sides = _frame(mask)
    rgb = photo_pixels(photo, prob.shape)
    align, contrast = _edges(mask, rgb)
    separability, conflict = _colours(mask, rgb)
    return {
        "raw_max": float(raw.max()),
        "area": total / mask.size,
        "soft_share": soft / mask.size,
        "soft_width": soft / max(perimeter, 1),
        "uncertainty": float(np.minimum(prob, 1 - prob).mean() * 2),
        "weak_inside": float(np.count_nonzero(mask & (prob < 0.9))) / max(total, 1),
        "pieces": pieces,
        "largest_share": largest,
        "holes": holes,
        "border": border,
        "sides": sides,
        "compactness": perimeter / max(np.sqrt(total), 1.0),
        "edge_align": align,
        "contrast": contrast,
        "colour_sep": separability,
        "colour_conflict": conflict,
        "inside_mean": float(prob[mask].mean()) if total else 0.0,
    }


def agreement(output: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """How far a second opinion's raw map (any square size) is from the job's."""
    prob = normalised(output)
    other = normalised(second)
    if other.shape != prob.shape:
        other = cv2.resize(other, prob.shape[::-1], interpolation=cv2.INTER_LINEAR)
    a, b = prob >= 0.5, other >= 0.5
    union = np.count_nonzero(a | b)
    return {
        "agree_iou": np.count_nonzero(a & b) / union if union else 1.0,
        "agree_mad": float(np.abs(prob - other).mean()),
    }


_LOG1P = frozenset(("pieces", "soft_width", "compactness", "edge_align"))
_LOG = frozenset(
    ("colour_conflict", "soft_share", "uncertainty", "holes", "agree_mad", "weak_inside", "area",
     "border")
)  # fmt: skip
_LOG_GAP = frozenset(("agree_iou", "colour_sep", "inside_mean", "largest_share"))


def _transform(name: str, value: float) -> float:
    """Each feature as the models see it: counts and widths as log(1 + v), shares
    as log(v + 0.001), shares near 1 as log(1.001 − v), the rest as they are."""
    if name in _LOG1P:
        return float(np.log1p(value))
    if name in _LOG:
        return float(np.log(value + 1e-3))
    if name in _LOG_GAP:
        return float(np.log(1.001 - value))
    return float(value)


def score(features: Mapping[str, float], level: str) -> float:
    """The calibrated score of ``features`` with the stored model of ``level``: a sum of
    per-feature step functions (boosted stumps) or a linear model, then the isotonic
    calibration to an IoU estimate."""
    fitted = quality_model.MODEL[level]
    x = np.asarray([_transform(n, features[n]) for n in fitted["features"]], np.float64)
    if "steps" in fitted:
        raw = fitted["base"] + sum(
            step["v"][int(np.searchsorted(step["t"], value, side="left"))]
            for step, value in zip(fitted["steps"], x, strict=True)
        )
    else:
        z = (x - np.asarray(fitted["mean"])) / np.asarray(fitted["scale"])
        raw = float(z @ np.asarray(fitted["coef"]) + fitted["intercept"])
    knots = fitted["calibration"]
    return float(np.clip(np.interp(raw, knots["x"], knots["y"]), 0.0, 1.0))


def flags(features: Mapping[str, float]) -> list[str]:
    """The codes of :data:`FLAGS` whose stored thresholds ``features`` cross."""
    t = quality_model.FLAG_THRESHOLDS
    raised = {
        "no_subject": features["area"] < t["no_subject"],
        "tiny_subject": t["no_subject"] <= features["area"] < t["tiny_subject"],
        "several_pieces": (
            features["pieces"] >= 2 and features["largest_share"] < t["several_pieces"]
        ),
        "touches_frame": features["border"] > t["touches_frame"],
        "uncertain_edges": features["soft_width"] > t["uncertain_edges"],
        "low_contrast": 0 < features["contrast"] < t["low_contrast"],
        "models_disagree": features.get("agree_iou", 1.0) < t["models_disagree"],
    }
    return [code for code in FLAGS if raised[code]]


def assess(output: np.ndarray, photo: Any, *, second: np.ndarray | None = None) -> Quality:
    """The quality of the cutout made from ``output`` (the model's raw first output) of
    ``photo``; ``full`` when ``second`` (the second opinion's raw output) is given."""
    features = basic_features(output, photo)
    level = "basic"
    if second is not None:
        features.update(agreement(output, second))
        level = "full"
    raised = flags(features)
    # an empty cutout of a photo sent to be cut out is wrong whatever the features say
    value = 0.0 if "no_subject" in raised else round(score(features, level), 4)
    return Quality(value, raised, features, level)


#: infer(model, batch) -> the model's raw first output for an N×3×320×320 batch
Infer = Callable[[str, np.ndarray], np.ndarray]


def second_opinion(batch: np.ndarray, infer: Infer) -> np.ndarray:
    """The second opinion of ``full`` for the model input ``batch`` (1×3×320×320, rembg's
    preprocessing, which u2net and u2netp share): :data:`SECOND_MODEL`'s raw map of the
    mirrored photo, mirrored back."""
    mirrored = np.ascontiguousarray(batch[..., ::-1])
    return np.asarray(infer(SECOND_MODEL, mirrored))[0, 0, :, ::-1]
