"""How well the quality score (worker/engine/quality.py) finds the bad cutouts.

Rank statistics in numpy and scipy (deterministic), shared by ``cutout eval`` and
bench/quality.py:

- :func:`auroc`: the area under the ROC curve of ``risk`` for ``bad`` (ties count half);
- :func:`spearman`: Spearman's rank correlation (ties get their average rank);
- :func:`caught`: the share of the bad items among the ``share`` of items ranked riskiest;
- :func:`summarize`: all of them for one column's scored photos (docs/eval.md's keys).

The risk of a photo is 1 − score; a cutout is *bad* below an IoU of 0.8 (:data:`BAD`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import stats

#: a cutout below this IoU is bad (the review shares and ``review_bad`` count these)
BAD = 0.8
#: AUROC is reported for a cutout below each of these IoUs (key ``auroc_<100·t>``)
BAD_BELOW = (0.9, 0.8)
#: the lowest-scored shares whose catch of bad cutouts is reported (key ``caught_<100·s>``)
SHARES = (0.1, 0.2)


def auroc(risk: np.ndarray, bad: np.ndarray) -> float | None:
    """P(risk of a bad item > risk of a good one), ties half; None with one class only."""
    bad = np.asarray(bad, bool)
    n_bad, n_good = int(bad.sum()), int((~bad).sum())
    if n_bad == 0 or n_good == 0:
        return None
    ranks = stats.rankdata(risk)
    return float((ranks[bad].sum() - n_bad * (n_bad + 1) / 2) / (n_bad * n_good))


def spearman(score: np.ndarray, iou: np.ndarray) -> float | None:
    """Spearman's ρ of ``score`` and ``iou``; None under 3 items or when either is constant."""
    if len(score) < 3 or np.ptp(score) == 0 or np.ptp(iou) == 0:
        return None
    return float(stats.spearmanr(score, iou).statistic)


def caught(risk: np.ndarray, bad: np.ndarray, share: float) -> float | None:
    """Share of the bad items found by reviewing the ``share`` riskiest (at least one item;
    ties broken by order, stable); None when no item is bad."""
    bad = np.asarray(bad, bool)
    if not bad.any():
        return None
    n = max(1, round(share * len(risk)))
    order = np.argsort(-np.asarray(risk), kind="stable")[:n]
    return float(bad[order].sum() / bad.sum())


def key(prefix: str, value: float) -> str:
    """``auroc_90`` for 0.9: the JSON key of a threshold or share."""
    return f"{prefix}_{round(value * 100)}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summarize(
    results: Iterable[Mapping[str, Any]], level: str, review_below: float
) -> dict[str, Any]:
    """The score's figures over one column's per-photo results (those with both ``iou``
    and a ``score``; errors and unscored photos are left out, ``n`` counts the rest)."""
    scored = [r for r in results if r.get("score") is not None and "iou" in r]
    score = np.asarray([r["score"] for r in scored], float)
    iou = np.asarray([r["iou"] for r in scored], float)
    review = score < review_below
    bad = iou < BAD
    out: dict[str, Any] = {
        "level": level,
        "n": len(scored),
        "mean_score": _round(float(score.mean())) if len(scored) else None,
        "score_mae": _round(float(np.abs(score - iou).mean())) if len(scored) else None,
    }
    for threshold in BAD_BELOW:
        out[key("bad", threshold)] = int((iou < threshold).sum())
    for threshold in BAD_BELOW:
        out[key("auroc", threshold)] = _round(auroc(-score, iou < threshold))
    out["spearman"] = _round(spearman(score, iou))
    for share in SHARES:
        out[key("caught", share)] = _round(caught(-score, bad, share))
    out["review_below"] = review_below
    out["review"] = int(review.sum())
    out["review_bad"] = int((review & bad).sum())
    return out


def definitions(review_below: float) -> dict[str, Any]:
    """What the figures of :func:`summarize` count, for the JSON's ``definitions``."""
    return {
        "risk": "1 - score",
        "bad_below": BAD,
        "auroc_below": list(BAD_BELOW),
        "caught_shares": list(SHARES),
        "review_below": review_below,
    }
