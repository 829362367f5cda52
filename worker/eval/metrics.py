"""Quality metrics of a predicted alpha against a truth mask.

Both arrays are 8-bit (0..255) and the same shape. Definitions (docs/eval.md):

- binary masks: alpha >= 128 (:data:`THRESHOLD`) is foreground, for prediction and truth;
- ``iou``: |P ∩ T| / |P ∪ T|;
- ``f_score``: F-beta with beta² = 0.3 (the salient-object literature's choice, which
  weighs precision over recall), ``f1``: beta² = 1; precision = |P ∩ T| / |P|,
  recall = |P ∩ T| / |T|;
- ``mae``: mean absolute difference of the soft alphas scaled to 0..1;
- ``boundary_f1``: the F1 of boundary pixels, a predicted boundary pixel counting as
  correct when a truth boundary pixel lies within :data:`BOUNDARY_TOLERANCE` px
  (Euclidean), and the other way round for recall.

Empty-set conventions: when both masks are empty a metric is 1.0 (nothing to find, nothing
found); when exactly one is empty, 0.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import ndimage

THRESHOLD = 128
F_BETA2 = 0.3
BOUNDARY_TOLERANCE = 3.0
#: metric name → True when higher is better
METRICS: dict[str, bool] = {
    "iou": True,
    "f_score": True,
    "f1": True,
    "mae": False,
    "boundary_f1": True,
}


def _check(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    if pred.ndim != 2:
        raise ValueError(f"masks must be 2-D, got {pred.ndim}-D")


def binarize(alpha: np.ndarray) -> np.ndarray:
    """Foreground where alpha >= 128."""
    return np.asarray(alpha) >= THRESHOLD


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of the binarized masks."""
    _check(pred, truth)
    p, t = binarize(pred), binarize(truth)
    union = np.count_nonzero(p | t)
    if union == 0:
        return 1.0
    return np.count_nonzero(p & t) / union


def _f(precision: float, recall: float, beta2: float) -> float:
    if precision == 0.0 and recall == 0.0:
        return 0.0
    return (1 + beta2) * precision * recall / (beta2 * precision + recall)


def precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Precision and recall of the binarized prediction (empty conventions as above)."""
    _check(pred, truth)
    p, t = binarize(pred), binarize(truth)
    n_p, n_t = np.count_nonzero(p), np.count_nonzero(t)
    if n_p == 0 and n_t == 0:
        return 1.0, 1.0
    tp = np.count_nonzero(p & t)
    return (tp / n_p if n_p else 0.0), (tp / n_t if n_t else 0.0)


def f_score(pred: np.ndarray, truth: np.ndarray, beta2: float = F_BETA2) -> float:
    """F-beta of the binarized masks; beta2 = 0.3 by default, 1.0 gives F1."""
    precision, recall = precision_recall(pred, truth)
    return _f(precision, recall, beta2)


def mae(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute error of the soft alphas, on a 0..1 scale."""
    _check(pred, truth)
    diff = np.abs(pred.astype(np.int16) - truth.astype(np.int16))
    return float(diff.mean()) / 255.0


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a boolean mask: foreground pixels with a 4-neighbour outside it.

    The image frame is not a boundary (erosion treats outside the image as foreground), so
    a subject cut by the frame, such as a portrait's shoulders, has no edge there.
    """
    eroded = ndimage.binary_erosion(mask, border_value=1)
    return mask & ~eroded


def boundary_f1(
    pred: np.ndarray, truth: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE
) -> float:
    """F1 of boundary pixels matched within ``tolerance`` px (Euclidean distance)."""
    _check(pred, truth)
    bp, bt = boundary(binarize(pred)), boundary(binarize(truth))
    n_p, n_t = np.count_nonzero(bp), np.count_nonzero(bt)
    if n_p == 0 and n_t == 0:
        return 1.0
    if n_p == 0 or n_t == 0:
        return 0.0
    # distance of every pixel to the nearest boundary pixel of the other mask
    dist_to_truth = ndimage.distance_transform_edt(~bt)
    dist_to_pred = ndimage.distance_transform_edt(~bp)
    precision = np.count_nonzero(dist_to_truth[bp] <= tolerance) / n_p
    recall = np.count_nonzero(dist_to_pred[bt] <= tolerance) / n_t
    return _f(precision, recall, 1.0)


def evaluate(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """All metrics of one prediction, keyed as :data:`METRICS`.

    Raises ValueError when the shapes differ.
    """
    _check(pred, truth)
    precision, recall = precision_recall(pred, truth)
    return {
        "iou": float(iou(pred, truth)),
        "f_score": float(_f(precision, recall, F_BETA2)),
        "f1": float(_f(precision, recall, 1.0)),
        "mae": float(mae(pred, truth)),
        "boundary_f1": float(boundary_f1(pred, truth)),
    }


def mean_metrics(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean of every metric over rows (one row per image); rows with an ``error`` are skipped.

    Returns the means plus ``n`` (images averaged) and ``errors`` (rows skipped); a metric
    is None when no row counted.
    """
    good: list[Mapping[str, Any]] = []
    errors = 0
    for row in rows:
        if row.get("error"):
            errors += 1
        else:
            good.append(row)
    out: dict[str, Any] = {
        name: (float(np.mean([r[name] for r in good])) if good else None) for name in METRICS
    }
    out["n"] = len(good)
    out["errors"] = errors
    return out
