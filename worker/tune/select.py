"""What a tune validated and what it keeps: one held-out run (:class:`SingleRun`) or
k-fold cross-validation and a last run on every photo (:class:`CrossRuns`), both judged
by the gate of :mod:`worker.tune.gate` (needs torch for the last run)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from worker.tune import gate
from worker.tune.gate import Tolerance, Verdict

if TYPE_CHECKING:
    from worker.tune.data import Sample
    from worker.tune.fit import Fitted
    from worker.tune.run import Run

KEYS = ("iou", "boundary_f1", "mae", "n")


def _summary(m: dict[str, Any]) -> str:
    return f"IoU {m['iou']:.4f}  boundary F1 {m['boundary_f1']:.4f}"


class Selection(Protocol):
    base: dict[str, Any]

    def verdict(self) -> Verdict: ...
    def chosen_epoch(self) -> int | None: ...
    def final(self, run: Run) -> tuple[dict[str, Any], int]: ...
    def probe(self) -> Sequence[Sample]: ...
    def record(self) -> dict[str, Any]: ...
    def counts(self) -> tuple[int, int]: ...


@dataclasses.dataclass
class _Epochs:
    """The base and the validation after each epoch; ``kept`` the gate's choice."""

    tolerance: Tolerance
    allow_worse: bool
    base: dict[str, Any] = dataclasses.field(default_factory=dict)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    kept: int | None = None

    def _choose(self) -> int | None:
        best = gate.pick_best(self.base, self.metrics, self.tolerance)
        if best is None and self.allow_worse and self.metrics:
            best = gate.closest(self.metrics)
        return best

    def verdict(self) -> Verdict:
        """The kept epoch's verdict; with none, the closest epoch's (or the base's)."""
        if self.kept is not None:
            return Verdict(self.base, self.metrics[self.kept], self.tolerance)
        if not self.metrics:
            return Verdict(self.base, self.base, self.tolerance)
        return Verdict(self.base, self.metrics[gate.closest(self.metrics)], self.tolerance)

    def chosen_epoch(self) -> int | None:
        return None if self.kept is None else int(self.history[self.kept]["epoch"])

    def _line(self, label: str, metrics: dict[str, Any], extra: str, kept: bool) -> str:
        verdict = Verdict(self.base, metrics, self.tolerance)
        note = "  passes the gate" if verdict.passed else ""
        note += "  best so far" if kept else ""
        return f"{label}: {_summary(metrics)}  ({verdict.deltas()} over base){extra}{note}"

    def validation(self) -> dict[str, Any]:
        verdict = self.verdict()
        tuned = self.metrics[self.kept] if self.kept is not None else verdict.tuned
        return {
            "base": {k: self.base[k] for k in KEYS if k in self.base},
            "tuned": {k: tuned[k] for k in KEYS if k in tuned},
            "best_epoch": self.chosen_epoch(),
            "history": self.history,
            "gate": {
                "passed": verdict.passed,
                "tolerance": dataclasses.asdict(self.tolerance),
                "delta": {m: verdict.delta(m) for m, _ in gate.MEASURES},
            },
        }


@dataclasses.dataclass
class SingleRun(_Epochs):
    """One run validated on held-out photos; the gate's best epoch is what is kept."""

    train_items: int = 0
    val_set: Sequence[Sample] = ()
    fitted: Fitted | None = None

    def add(self, epoch: int, metrics: dict[str, Any], say: Callable[[str], None]) -> bool:
        """Record an epoch's validation; whether its weights are now the ones kept."""
        self.history.append({"epoch": epoch, **{k: metrics[k] for k in KEYS if k in metrics}})
        self.metrics.append(metrics)
        best = self._choose()
        keep = best is not None and best == len(self.metrics) - 1
        if keep:
            self.kept = best
        say(self._line(f"epoch {epoch}", metrics, "", keep))
        return keep

    def final(self, run: Run) -> tuple[dict[str, Any], int]:
        assert self.fitted is not None
        assert self.fitted.state is not None
        return self.fitted.state, self.fitted.steps

    def probe(self) -> Sequence[Sample]:
        return self.val_set[:1]

    def counts(self) -> tuple[int, int]:
        return self.train_items, len(self.val_set)

    def record(self) -> dict[str, Any]:
        return {**self.validation(), "method": "held-out"}


@dataclasses.dataclass
class CrossRuns(_Epochs):
    """k-fold cross-validation: every photo validated by the fold that did not train on
    it, pooled per epoch; then a run on every photo for the chosen number of epochs."""

    samples: Sequence[Sample] = ()
    fold_base: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    fold_epochs: list[list[dict[str, Any]]] = dataclasses.field(default_factory=list)

    def add_fold(
        self, base: dict[str, Any], epochs: list[dict[str, Any]], say: Callable[[str], None]
    ) -> None:
        self.fold_base.append(base)
        self.fold_epochs.append(epochs)
        index = len(self.fold_base)
        for epoch, metrics in enumerate(epochs, start=1):
            verdict = Verdict(base, metrics, Tolerance())
            say(f"fold {index} epoch {epoch}: {_summary(metrics)}  ({verdict.deltas()}, "
                f"{base['n']} photos)")  # fmt: skip

    def pool(self, say: Callable[[str], None]) -> None:
        """Pool the folds per epoch; choose the epoch count the gate passes best."""
        self.base = gate.pool(self.fold_base)
        say(f"base on cross-validation ({self.base['n']} photos): {_summary(self.base)}")
        n_epochs = min(len(e) for e in self.fold_epochs)
        for epoch in range(n_epochs):
            pooled = gate.pool([e[epoch] for e in self.fold_epochs])
            wins = sum(
                Verdict(b, e[epoch], Tolerance()).passed
                for b, e in zip(self.fold_base, self.fold_epochs, strict=True)
            )
            self.metrics.append(pooled)
            self.history.append(
                {
                    "epoch": epoch + 1,
                    "folds_won": wins,
                    **{k: pooled[k] for k in KEYS if k in pooled},
                }
            )
        self.kept = self._choose()
        for index, metrics in enumerate(self.metrics):
            wins = self.history[index]["folds_won"]
            extra = f"  better in both in {wins} of {len(self.fold_base)} folds"
            say(self._line(f"cross-validation, {index + 1} epochs", metrics, extra,
                           index == self.kept))  # fmt: skip

    def final(self, run: Run) -> tuple[dict[str, Any], int]:
        from worker.tune import fit as fitting

        assert self.kept is not None
        epochs = self.kept + 1
        run.say(f"training on all {len(self.samples)} photos for {epochs} epochs")
        fitted = fitting.fit(
            run.base, self.samples, run.recipe, device=run.device, seed=run.config.seed,
            progress=run.progress or fitting.Progress(run.recipe.steps(len(self.samples)), run.say),
            label="all photos", epochs=epochs,
        )  # fmt: skip
        assert fitted.state is not None
        return fitted.state, fitted.steps

    def probe(self) -> Sequence[Sample]:
        return self.samples[:1]

    def counts(self) -> tuple[int, int]:
        return len(self.samples), len(self.samples)

    def record(self) -> dict[str, Any]:
        folds = [
            {
                "n": b["n"],
                "base": {m: b[m] for m, _ in gate.MEASURES},
                "tuned": {m: e[self.kept][m] for m, _ in gate.MEASURES}
                if self.kept is not None
                else None,
            }
            for b, e in zip(self.fold_base, self.fold_epochs, strict=True)
        ]
        return {**self.validation(), "method": "cross-validation", "folds": folds}


def refusal(selection: Selection, base_name: str) -> str:
    """Why nothing is registered: the measure that fell, or that none rose."""
    verdict = selection.verdict()
    where = "on validation"
    if verdict.worse:
        return (
            f"not registered: the tuned model does not beat {base_name} {where}: "
            f"{verdict.failures()} ({verdict.deltas()}); no epoch count beat it in both IoU "
            "and boundary F1 (--tolerance-iou, --tolerance-bf1 allow a fall); try more "
            "photos, more epochs or other --layers"
        )
    return (
        f"not registered: no epoch count beat {base_name} {where} in both IoU and boundary "
        f"F1 (best {verdict.deltas()}); try more photos, more epochs or other --layers"
    )
