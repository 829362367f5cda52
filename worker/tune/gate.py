"""The gate a tuned model passes before it is registered, and how the best epoch is
chosen by the same rule.

A model passes when, on the validation photos, it is better than its base on mean IoU or
mean boundary F1, and worse on neither beyond that measure's tolerance. IoU alone let
through a model whose boundary F1 fell by 0.081 while its IoU rose by 0.015: its edges
were worse though its area was better. The best epoch is the one the gate passes with the
highest IoU (then boundary F1); an epoch the gate refuses is never kept over the base.
"""

from __future__ import annotations

import dataclasses
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
    """How far below its base each measure may fall (absolute, mean over validation)."""

    iou: float = 0.005
    boundary_f1: float = 0.01

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
        return self.better and not self.worse

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


def pick_best(
    base: Mapping[str, float], epochs: Sequence[Mapping[str, Any]], tolerance: Tolerance
) -> int | None:
    """The index in ``epochs`` (each a metrics mapping) of the epoch the gate passes with
    the highest IoU, then boundary F1 (the earliest of equals); None when it passes none."""
    best: int | None = None
    for index, metrics in enumerate(epochs):
        if not Verdict(base, metrics, tolerance).passed:
            continue
        key = (metrics["iou"], metrics["boundary_f1"])
        if best is None or key > (epochs[best]["iou"], epochs[best]["boundary_f1"]):
            best = index
    return best


def closest(epochs: Sequence[Mapping[str, Any]]) -> int:
    """The epoch a refusal reports (and ``allow_worse`` keeps): the highest IoU."""
    return max(range(len(epochs)), key=lambda i: (epochs[i]["iou"], epochs[i]["boundary_f1"], -i))
