"""The quality score's candidate models and their leave-one-source-out choice.

The generated truth comes from four sources (``gen``, ``emoji``, ``icons``, ``watches``:
bench/quality_data.py). A choice by k-fold cross validation over all four rewards
features that separate failures *within* that generated domain; a shop's photos are
another domain. So each candidate of :func:`candidates` is judged as it would meet a new
domain (:func:`loso`): for each source, it is fitted on the other three sources' train
split and measured on the left-out source's heldout split (AUROC of the risk for
IoU < 0.8 and < 0.9, Spearman's ρ, and the mean absolute error of the score as an IoU
estimate, its calibration fitted on the three training sources' own leave-one-source-out
predictions). :func:`select` keeps the best mean AUROC over the four folds (mean of
< 0.8 and < 0.9; ties, within :data:`TIE`: the simpler candidate) and the review threshold: the
median over the folds of each fold's best-F1 cut for IoU < 0.8 (steps of 0.05, the
lower one when the median falls between two). The model shipped before, :data:`CURRENT`
(chosen by 5-fold cross validation mixing the sources), is replaced only by a choice
whose mean is higher than its own by more than :data:`REPLACE_MARGIN`. Everything is
numpy: deterministic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import quality_stats as qs

from worker.engine import quality

#: the second opinion of ``full`` (quality.SECOND_MODEL, mirrored): see docs/quality.md
CHOSEN = "u2netp_flip"
#: each feature's known direction: +1 higher means a better cutout, −1 worse, 0 either
#: (too small and too large subjects both fail; shapes); boosted models keep it
DIRECTION = {
    **dict.fromkeys(("colour_sep", "contrast", "edge_align", "largest_share"), 1),
    **dict.fromkeys(("inside_mean", "raw_max", "agree_iou"), 1),
    **dict.fromkeys(("soft_share", "soft_width", "uncertainty", "weak_inside", "pieces"), -1),
    **dict.fromkeys(("holes", "colour_conflict", "agree_mad", "border", "sides"), -1),
    **dict.fromkeys(("area", "compactness"), 0),
}
#: the features read from the photo's pixels, whose meaning depends on the photo's domain
PHOTO = ("edge_align", "contrast", "colour_sep", "colour_conflict")
#: feature set → the features it leaves out; ``damped`` keeps :data:`PHOTO` but damps them
SETS: dict[str, tuple[str, ...]] = {
    "all": (),
    "damped": (),
    "no_hist": ("colour_sep", "colour_conflict"),
    "intrinsic": PHOTO,
}
#: mean AUROCs this close to the best count as ties, won by the simpler candidate
TIE = 0.001
#: the shipped model (:data:`CURRENT`) is replaced only by a choice whose mean AUROC is
#: higher by more than this: the protocol's own noise. A left-out source's heldout split
#: has 30-120 photos with 10-50 bad ones, where one AUROC's standard error is 0.02-0.04;
#: differences below 0.01 between candidates on the same photos are within it
REPLACE_MARGIN = 0.01
DAMP = 0.25  # a damped feature's share of a boosting step; 1 / DAMP times the ridge penalty


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A feature set of :data:`SETS` and a model: ``ridge`` (penalty) or ``boost``
    (rounds, rate; monotone in :data:`DIRECTION`)."""

    features: str
    kind: str
    strength: float
    rate: float = 0.0
    opinion: str = CHOSEN  # the second opinion whose agreement ``full`` reads

    @property
    def name(self) -> str:
        model = f"ridge {self.strength:g}" if self.kind == "ridge" else (
            f"boost {self.strength:g} {self.rate:g}"
        )  # fmt: skip
        return f"{self.features} {model}"

    def names(self, level: str) -> list[str]:
        names = feature_names(level, self.opinion)
        return [n for n in names if n.split("@")[0] not in SETS[self.features]]

    def simpler(self, level: str) -> tuple:
        """Sort key, simplest first: fewer features, undamped, ridge, then fewer rounds or
        a stronger penalty, then a smaller rate."""
        rounds = self.strength if self.kind == "boost" else -self.strength
        damped = self.features == "damped"
        return (len(self.names(level)), damped, self.kind != "ridge", rounds, self.rate)


CURRENT = Candidate("all", "boost", 600, 0.05)  # the model chosen by 5-fold CV before


def candidates() -> list[Candidate]:
    out = []
    for features in SETS:
        out += [Candidate(features, "ridge", a) for a in (3.0, 30.0, 100.0)]
        out += [Candidate(features, "boost", r, 0.05) for r in (150, 300, 600)]
        out.append(Candidate(features, "boost", 300, 0.02))
    return out


def feature_names(level: str, opinion: str = CHOSEN) -> list[str]:
    names = list(quality.BASIC)
    return names if level == "basic" else names + [f"{n}@{opinion}" for n in quality.AGREE]


def matrix(rows: list[dict], names: list[str]) -> np.ndarray:
    return np.asarray([[quality._transform(n.split("@")[0], r[n]) for n in names] for r in rows])


def target(rows: list[dict]) -> np.ndarray:
    """What the models predict: −log(1.02 − IoU), the error on a log scale."""
    return -np.log(1.02 - np.clip(np.asarray([r["iou"] for r in rows]), 0, 1))


def monotone(names: list[str]) -> list[int]:
    """:data:`DIRECTION` of each feature as the model sees it (the transform
    log(1.001 − v) turns it round)."""
    signs = []
    for name in names:
        base = name.split("@")[0]
        signs.append(-DIRECTION[base] if base in quality._LOG_GAP else DIRECTION[base])
    return signs


def train(candidate: Candidate, rows: list[dict], level: str) -> dict:
    """``candidate`` fitted on ``rows``: qs.ridge's or qs.boost's model."""
    names = candidate.names(level)
    x, y = matrix(rows, names), target(rows)
    damped = candidate.features == "damped"
    factor = np.asarray([DAMP if damped and n in PHOTO else 1.0 for n in names])
    if candidate.kind == "ridge":
        return qs.ridge(x, y, candidate.strength / factor)
    rounds = int(candidate.strength)
    return qs.boost(x, y, rounds, candidate.rate, monotone(names), damp=list(factor))


def predict(candidate: Candidate, model: dict, rows: list[dict], level: str) -> np.ndarray:
    x = matrix(rows, candidate.names(level))
    return qs.predict(model, x) if candidate.kind == "ridge" else qs.boosted(model, x)


def kfold(candidate: Candidate, rows: list[dict], level: str, k: int = 5) -> np.ndarray:
    """Each row's prediction by ``candidate`` fitted on the other folds, the folds mixing
    the sources (the former choice's calibration: :data:`CURRENT` kept)."""
    fold = qs.folds([f"{r['source']}/{r['category']}" for r in rows], k)
    out = np.empty(len(rows))
    for f in range(k):
        model = train(candidate, [r for r, g in zip(rows, fold, strict=True) if g != f], level)
        mine = [r for r, g in zip(rows, fold, strict=True) if g == f]
        out[fold == f] = predict(candidate, model, mine, level)
    return out


def by_source(
    candidate: Candidate, rows: list[dict], level: str, also: list[dict] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each row's prediction by ``candidate`` fitted on the other sources' rows, and the
    same fold models' predictions for the rows of ``also`` of each left-out source."""
    oof = np.empty(len(rows))
    extra: dict[str, np.ndarray] = {}
    for source in sorted({r["source"] for r in rows}):
        out = np.asarray([r["source"] == source for r in rows])
        model = train(candidate, [r for r, o in zip(rows, out, strict=True) if not o], level)
        oof[out] = predict(
            candidate, model, [r for r, o in zip(rows, out, strict=True) if o], level
        )
        mine = [r for r in also or () if r["source"] == source]
        if mine:
            extra[source] = predict(candidate, model, mine, level)
    return oof, extra


def calibrate(raw: np.ndarray, knots: tuple[list[float], list[float]]) -> np.ndarray:
    return np.clip(np.interp(raw, knots[0], knots[1]), 0.0, 1.0)


def review_below(scores: np.ndarray, iou: np.ndarray) -> float:
    """The cut (0.50–0.95 by 0.05) of ``scores`` with the best F1 for finding IoU < 0.8."""
    bad = iou < 0.8
    best = (-1.0, 0.8)
    for cut in np.round(np.arange(0.5, 0.951, 0.05), 2):
        hit = scores < cut
        tp = float((hit & bad).sum())
        f1 = 2 * tp / max(hit.sum() + bad.sum(), 1)
        best = max(best, (f1, float(cut)))
    return best[1]


def metrics(scores: np.ndarray, iou: np.ndarray) -> dict[str, float]:
    def known(value: float | None) -> float:
        if value is None:
            raise ValueError("a left-out source needs good and bad cutouts to be measured")
        return value

    return {
        "auc8": known(qs.auroc(-scores, iou < 0.8)),
        "auc9": known(qs.auroc(-scores, iou < 0.9)),
        "rho": known(qs.spearman(scores, iou)),
        "mae": float(np.abs(scores - iou).mean()),
        "cut": review_below(scores, iou),
    }


def loso(candidate: Candidate, train_rows: list[dict], heldout: list[dict], level: str) -> dict:
    """Per left-out source: ``candidate``'s :func:`metrics` on its heldout rows, fitted on
    the other sources' train rows and calibrated (isotonic) on those rows' own
    leave-one-source-out predictions; ``oof``: every train row's prediction by the fold
    model that did not see its source (for the final calibration)."""
    oof, predicted = by_source(candidate, train_rows, level, also=heldout)
    folds = {}
    for source, raw in predicted.items():
        rest = [r for r in train_rows if r["source"] != source]
        inner, _ = by_source(candidate, rest, level)
        knots = qs.isotonic(inner, np.asarray([r["iou"] for r in rest]))
        iou = np.asarray([r["iou"] for r in heldout if r["source"] == source])
        folds[source] = metrics(calibrate(raw, knots), iou)
    return {"folds": folds, "oof": oof}


def summary(folds: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean over the folds of each metric, ``auc`` (mean of auc8 and auc9) and the worst
    fold's ``auc`` and ``mae``; ``cut``: the folds' median cut (the lower on a tie)."""
    out = {k: float(np.mean([f[k] for f in folds.values()])) for k in ("auc8", "auc9", "rho")}
    out["mae"] = float(np.mean([f["mae"] for f in folds.values()]))
    aucs = [(f["auc8"] + f["auc9"]) / 2 for f in folds.values()]
    out["auc"], out["worst_auc"] = float(np.mean(aucs)), float(min(aucs))
    out["worst_mae"] = float(max(f["mae"] for f in folds.values()))
    cuts = sorted(f["cut"] for f in folds.values())
    out["cut"] = cuts[(len(cuts) - 1) // 2]
    return out


def select(
    train_rows: list[dict], heldout: list[dict], level: str, tried: Sequence[Candidate]
) -> tuple[Candidate, dict[Candidate, dict]]:
    """The simplest candidate whose mean leave-one-source-out AUROC is within :data:`TIE`
    of the best, and every candidate's :func:`loso` result with its :func:`summary`
    (bench/quality.py keeps :data:`CURRENT` unless the choice's mean is higher by more
    than :data:`REPLACE_MARGIN`)."""
    results = {}
    for candidate in tried:
        result = loso(candidate, train_rows, heldout, level)
        results[candidate] = {**result, "summary": summary(result["folds"])}

    best = max(results[c]["summary"]["auc"] for c in tried)
    close = [c for c in tried if results[c]["summary"]["auc"] >= best - TIE]
    return min(close, key=lambda c: c.simpler(level)), results


def stored(candidate: Candidate, model: dict, level: str, knots: tuple) -> dict:
    """The model as worker/engine/quality_model.py stores it."""
    out: dict = {"features": [n.split("@")[0] for n in candidate.names(level)]}
    if candidate.kind == "ridge":
        out["mean"] = [round(float(v), 6) for v in model["mean"]]
        out["scale"] = [round(float(v), 6) for v in model["scale"]]
        out["coef"] = [round(float(v), 6) for v in model["coef"]]
        out["intercept"] = round(model["intercept"], 6)
    else:
        out["base"] = round(model["base"], 6)
        out["steps"] = [
            {"t": [float(f"{t:.6g}") for t in ts], "v": [round(v, 6) for v in vs]}
            for ts, vs in model["steps"]
        ]
    out["calibration"] = {"x": knots[0], "y": knots[1]}
    return out
