"""The gate a tuned model passes before it is registered, the cross-validation folds it
is measured on, and how the number of epochs is chosen by the same rule.

A model passes when, on validation, it beats its base on mean IoU *and* on mean boundary
F1: each measure above the base's minus that measure's tolerance (0 by default, so both
must rise), and at least one strictly above the base. IoU alone once let through a model
whose boundary F1 fell by 0.081 while its IoU rose by 0.015: its edges were worse though
its area was better.

Four validation photos cannot tell a gain from luck: on real horse photos a tune that
validation on 4 photos scored +0.002 IoU lost 0.022 on 10 others. So by default the
validation is k-fold cross-validation inside the tuning set (:func:`folds`): each photo is
validated once, by a model that never trained on it, and the gate compares the means over
all of them (:func:`pool`). The epoch count is the one the gate passes with the largest
gain (IoU + boundary F1) over the base; an epoch the gate refuses is never chosen.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any

#: the measures the gate compares: key in the metrics, name in messages
MEASURES = (("iou", "IoU"), ("boundary_f1", "boundary F1"))

#: exit codes of a refusal: which measure fell beyond its tolerance (1: none fell, but
#: none rose either)
EXIT_NOT_BETTER = 1
EXIT_WORSE = {("iou",): 3, ("boundary_f1",): 4, ("iou", "boundary_f1"): 5}


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far below its base each measure may fall (absolute, mean over validation); 0:
    the measure must rise."""

    iou: float = 0.0
    boundary_f1: float = 0.0

    def of(self, measure: str) -> float:
        return float(getattr(self, measure))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One model (an epoch) against its base."""

    base: Mapping[str, float]
    tuned: Mapping[str, float]
    tolerance: Tolerance

    def delta(self, measure: str) -> float:
        return float(self.tuned[measure]) - float(self.base[measure])

    @property
    def worse(self) -> tuple[str, ...]:
        """The measures that fell by more than their tolerance."""
        return tuple(m for m, _ in MEASURES if self.delta(m) < -self.tolerance.of(m))

    @property
    def better(self) -> bool:
        return any(self.delta(m) > 0 for m, _ in MEASURES)

    @property
    def passed(self) -> bool:
        """Every measure above the base's minus its tolerance, and one above the base."""
        above = all(self.delta(m) > -self.tolerance.of(m) for m, _ in MEASURES)
        return above and self.better

    @property
    def exit_code(self) -> int:
        """0 when passed; else which measure fell (EXIT_WORSE), or EXIT_NOT_BETTER."""
        if self.passed:
            return 0
        return EXIT_WORSE.get(self.worse, EXIT_NOT_BETTER)

    def deltas(self) -> str:
        """``ΔIoU +0.0150, Δboundary F1 -0.0810``."""
        return ", ".join(f"Δ{name} {self.delta(m):+.4f}" for m, name in MEASURES)

    def failures(self) -> str:
        """Each measure that fell too far, by how much, against its tolerance."""
        return "; ".join(
            f"{name} fell by {-self.delta(m):.4f} ({float(self.base[m]):.4f} → "
            f"{float(self.tuned[m]):.4f}), more than its tolerance {self.tolerance.of(m):g}"
            for m, name in MEASURES
            if m in self.worse
        )


def _gain(metrics: Mapping[str, Any]) -> float:
    return float(metrics["iou"]) + float(metrics["boundary_f1"])


def pick_best(
    base: Mapping[str, float], epochs: Sequence[Mapping[str, Any]], tolerance: Tolerance
) -> int | None:
    """The index in ``epochs`` (each a metrics mapping) of the epoch the gate passes with
    the highest IoU + boundary F1 (the earliest of equals); None when it passes none."""
    best: int | None = None
    for index, metrics in enumerate(epochs):
        if not Verdict(base, metrics, tolerance).passed:
            continue
        if best is None or _gain(metrics) > _gain(epochs[best]):
            best = index
    return best


def closest(epochs: Sequence[Mapping[str, Any]]) -> int:
    """The epoch a refusal reports (and ``allow_worse`` keeps): the highest IoU."""
    return max(range(len(epochs)), key=lambda i: (epochs[i]["iou"], epochs[i]["boundary_f1"], -i))


def folds(n: int, k: int, seed: int) -> list[list[int]]:
    """``k`` disjoint folds of the indices 0..n-1 (a seeded shuffle, sizes differing by at
    most one), each sorted; ``k`` is capped at ``n``. Raises ValueError when n < 2 or k < 2."""
    if n < 2 or k < 2:
        raise ValueError(f"cross-validation needs at least 2 photos and 2 folds (got {n}, {k})")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = min(k, n)
    return [sorted(order[i::k]) for i in range(k)]


def pool(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The means over every photo of several folds' results (each a mean over its ``n``
    photos, as :func:`worker.eval.metrics.mean_metrics` gives): weighted by ``n``."""
    total = sum(int(r["n"]) for r in results)
    if not total:
        raise ValueError("no photos to pool")
    skip = ("n", "errors")
    keys = [k for k in results[0] if k not in skip and isinstance(results[0][k], int | float)]
    pooled = {k: sum(float(r[k]) * int(r["n"]) for r in results) / total for k in keys}
    return {**pooled, "n": total}
