"""The quality score's model choice, leave one source out (bench/quality_fit.py), on
synthetic feature rows: no maps, no weights.

Four sources stand for the generators. The soft band's width tells a bad cutout in every
source; ``colour_conflict`` tells it only in one (as a colour cue true of one kind of
photo and not of the next); in the others it is noise. Pooled folds reward it, a new
source does not: the choice must leave it out.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import numpy as np
import pytest

from tests.conftest import ROOT
from worker.engine import quality

SOURCES = ("gen", "emoji", "icons", "watches")


@pytest.fixture(scope="module")
def qf() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module("quality_fit")
    finally:
        sys.path.remove(str(ROOT / "bench"))


def rows(split: str, *, spurious_in: str = "watches") -> list[dict]:
    """Rows of every source: IoU from a latent quality q; ``soft_width`` follows q
    everywhere, ``colour_conflict`` only in ``spurious_in``; the rest are constants."""
    rng = np.random.default_rng(26 if split == "train" else 27)
    out = []
    for source in SOURCES:
        for _ in range(40 if split == "train" else 30):
            q = float(rng.uniform())
            row: dict[str, float | str] = dict.fromkeys(quality.BASIC, 0.5)
            row.update({"pieces": 1.0, "sides": 0.0, "raw_max": 5.0})
            row["soft_width"] = max(3 * (1 - q) + float(rng.normal(0, 0.6)), 0.0)
            conflict = 0.3 * (1 - q) if source == spurious_in else float(rng.uniform(0, 0.3))
            row["colour_conflict"] = conflict + 0.01
            row.update({"source": source, "iou": 0.5 + 0.5 * q})
            out.append(row)
    return out


def pooled_cv(qf: ModuleType, candidate: object, train: list[dict]) -> float:
    """Mean AUROC (IoU < 0.8, < 0.9) by 5-fold cross validation mixing the sources."""
    qs = sys.modules["quality_stats"]
    x, y = qf.matrix(train, candidate.names("basic")), qf.target(train)  # type: ignore[attr-defined]
    fold = qs.folds([r["source"] for r in train], 5)
    cv = qs.cross_predictions(x, y, fold, 3.0, None)
    iou = np.asarray([r["iou"] for r in train])
    return float(np.mean([qs.auroc(-cv, iou < t) for t in (0.8, 0.9)]))


def test_a_cue_true_of_one_source_only_is_left_out(qf: ModuleType) -> None:
    tried = [qf.Candidate("all", "ridge", 3.0), qf.Candidate("no_hist", "ridge", 3.0)]
    # the pooled folds, the former choice, would keep the cue
    assert pooled_cv(qf, tried[0], rows("train")) > pooled_cv(qf, tried[1], rows("train"))
    chosen, results = qf.select(rows("train"), rows("heldout"), "basic", tried)
    assert chosen == qf.Candidate("no_hist", "ridge", 3.0)
    # measured on every source, each by a model that never saw it
    assert set(results[chosen]["folds"]) == set(SOURCES)
    auc = {c: results[c]["summary"]["auc"] for c in tried}
    assert auc[chosen] > auc[tried[0]] + qf.TIE


def test_equal_candidates_go_to_the_simpler(qf: ModuleType) -> None:
    # no source has the cue: the colour features are noise or constant either way
    train, heldout = rows("train", spurious_in=""), rows("heldout", spurious_in="")
    for row in (*train, *heldout):
        row["colour_conflict"] = 0.1  # constant: dropping it changes nothing
    tried = [qf.Candidate("all", "ridge", 30.0), qf.Candidate("no_hist", "ridge", 30.0)]
    chosen, results = qf.select(train, heldout, "basic", tried)
    assert results[tried[0]]["summary"]["auc"] == pytest.approx(results[tried[1]]["summary"]["auc"])
    assert chosen == qf.Candidate("no_hist", "ridge", 30.0)  # fewer features


def test_the_review_threshold_is_the_folds_median_cut(qf: ModuleType) -> None:
    def fold(cut: float) -> dict[str, float]:
        return {"auc8": 0.9, "auc9": 0.8, "rho": 0.7, "mae": 0.1, "cut": cut}

    cuts = {"gen": 0.85, "emoji": 0.5, "icons": 0.95, "watches": 0.85}
    assert qf.summary({s: fold(c) for s, c in cuts.items()})["cut"] == 0.85
    cuts = {"gen": 0.7, "emoji": 0.9, "icons": 0.8, "watches": 0.85}
    assert qf.summary({s: fold(c) for s, c in cuts.items()})["cut"] == 0.8  # the lower one


def test_the_choice_repeats_exactly(qf: ModuleType) -> None:
    tried = [qf.Candidate("intrinsic", "boost", 40, 0.1)]
    train, heldout = rows("train"), rows("heldout")
    first = qf.loso(tried[0], train, heldout, "basic")
    again = qf.loso(tried[0], train, heldout, "basic")
    assert first["folds"] == again["folds"]
    assert np.array_equal(first["oof"], again["oof"])
