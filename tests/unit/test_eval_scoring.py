"""How cutout eval measures the quality score: the rank statistics on hand-computed
answers (ties, empty classes), the summary block, and the runner and reports on a
stand-in engine that returns known scores."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.contract.options import Options
from worker.engine.quality import Quality
from worker.eval import scoring
from worker.eval.manifest import load_manifest
from worker.eval.methods import build_methods
from worker.eval.runner import aggregate, run_eval

# --- AUROC ------------------------------------------------------------------------------


def test_auroc_known_values() -> None:
    # the classic example: of the 4 (bad, good) pairs, 3 rank the bad one riskier
    assert scoring.auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert scoring.auroc(np.array([1, 2, 3, 4]), np.array([0, 0, 1, 1])) == 1.0
    assert scoring.auroc(np.array([4, 3, 2, 1]), np.array([0, 0, 1, 1])) == 0.0


def test_auroc_ties_count_half() -> None:
    assert scoring.auroc(np.ones(4), np.array([0, 1, 0, 1])) == 0.5
    # bad {1, 2} against good {0, 1}: 1 > 0, 1 = 1 (half), 2 > 0, 2 > 1 → 3.5 of 4
    assert scoring.auroc(np.array([0, 1, 1, 2]), np.array([0, 1, 0, 1])) == 0.875


def test_auroc_needs_both_classes() -> None:
    assert scoring.auroc(np.array([0.1, 0.2]), np.array([0, 0])) is None
    assert scoring.auroc(np.array([0.1, 0.2]), np.array([1, 1])) is None
    assert scoring.auroc(np.array([]), np.array([], bool)) is None


# --- Spearman -----------------------------------------------------------------------------


def test_spearman_known_values() -> None:
    assert scoring.spearman(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)
    assert scoring.spearman(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)
    # ties get their average rank: y ranks 1, 2, 3.5, 5, 3.5 → ρ = 0.8207826816681233
    rho = scoring.spearman(np.array([1, 2, 3, 4, 5.0]), np.array([5, 6, 7, 8, 7.0]))
    assert rho == pytest.approx(0.8207826816681233)


def test_spearman_is_none_when_undefined() -> None:
    assert scoring.spearman(np.array([0.1, 0.2]), np.array([0.5, 0.6])) is None  # under 3
    assert scoring.spearman(np.full(4, 0.5), np.array([0.1, 0.2, 0.3, 0.4])) is None
    assert scoring.spearman(np.array([0.1, 0.2, 0.3, 0.4]), np.ones(4)) is None


# --- caught in the lowest-scored share ----------------------------------------------------


def test_caught_counts_the_bad_among_the_riskiest() -> None:
    risk = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.1, 0.1, 0.2, 0.1, 0.1])
    bad = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], bool)
    assert scoring.caught(risk, bad, 0.1) == 0.5  # 1 photo reviewed: the 0.9, bad
    assert scoring.caught(risk, bad, 0.2) == 0.5  # 0.9 and 0.8
    assert scoring.caught(risk, bad, 0.3) == 1.0  # and 0.3
    assert scoring.caught(risk, np.zeros(10, bool), 0.2) is None  # nothing bad to catch


def test_caught_reviews_at_least_one_and_breaks_ties_by_order() -> None:
    bad = np.array([0, 1, 0], bool)
    assert scoring.caught(np.ones(3), bad, 0.1) == 0.0  # ties: the first photo is reviewed
    assert scoring.caught(np.array([0.0, 1.0, 0.0]), bad, 0.01) == 1.0


# --- the summary block --------------------------------------------------------------------


def _result(score: float | None, iou: float) -> dict:
    metrics = dict.fromkeys(("f_score", "f1", "mae", "boundary_f1"), 0.5)
    return {"iou": iou, **metrics, "score": score, "flags": []}


def test_summarize_hand_computed() -> None:
    rows = [
        _result(0.95, 0.97),
        _result(0.90, 0.92),
        _result(0.80, 0.85),  # below 0.9
        _result(0.70, 0.75),  # bad
        _result(0.92, 0.70),  # bad, scored high: the miss
        _result(None, 0.10),  # not scored: left out
        {"error": "boom"},
    ]
    q = scoring.summarize(rows, "basic", review_below=0.85)
    assert q["level"] == "basic"
    assert q["n"] == 5
    assert q["bad_90"] == 3
    assert q["bad_80"] == 2
    # IoU < 0.8: bad risks {0.30, 0.08} against good {0.05, 0.10, 0.20}: 3 + 1 of 6
    assert q["auroc_80"] == pytest.approx(round(4 / 6, 4))
    # IoU < 0.9: bad {0.20, 0.30, 0.08} against good {0.05, 0.10}: 2 + 2 + 1 of 6
    assert q["auroc_90"] == pytest.approx(round(5 / 6, 4))
    # ranks 5 3 2 1 4 against 5 4 3 2 1: Σd² = 12, ρ = 1 − 6·12 / (5·24)
    assert q["spearman"] == pytest.approx(0.4)
    assert q["caught_10"] == 0.5  # 1 of 5 photos reviewed: the 0.70, bad
    assert q["caught_20"] == 0.5
    assert q["review"] == 2  # 0.80 and 0.70
    assert q["review_bad"] == 1
    assert q["review_below"] == 0.85
    assert q["mean_score"] == pytest.approx(0.854)
    assert q["score_mae"] == pytest.approx(round((0.02 + 0.02 + 0.05 + 0.05 + 0.22) / 5, 4))


def test_summarize_with_empty_classes_gives_none() -> None:
    q = scoring.summarize([_result(0.9, 0.95), _result(0.8, 0.99)], "full", 0.85)
    assert q["auroc_90"] is None
    assert q["auroc_80"] is None
    assert q["caught_10"] is None
    assert q["spearman"] is None  # under 3 photos
    assert q["review"] == 1
    assert q["review_bad"] == 0
    empty = scoring.summarize([{"error": "boom"}], "basic", 0.85)
    assert empty["n"] == 0
    assert empty["mean_score"] is None
    assert empty["auroc_80"] is None


def test_aggregate_adds_quality_to_scored_methods_only() -> None:
    rows = [
        {"image": "x", "category": c, "error": None, "results": {"m": r, "g": dict(r)}}
        for c, r in (("a", _result(0.9, 0.95)), ("a", _result(0.5, 0.6)), ("b", _result(0.7, 0.9)))
    ]
    summary, by_category = aggregate(rows, ["m", "g"], {"m": "basic"}, 0.85)
    assert summary["g"]["quality"] is None
    assert summary["m"]["quality"]["n"] == 3
    assert summary["m"]["quality"]["auroc_80"] == 1.0
    assert by_category["a"]["m"]["quality"]["n"] == 2
    assert by_category["b"]["m"]["quality"]["bad_80"] == 0


# --- the runner and the reports, with a stand-in engine ---------------------------------


class KnownScores:
    """Renders the disc's truth shifted by ``shift`` px, scored ``score``: per image width."""

    def __init__(self, plan: dict[int, tuple[int, float | None]]) -> None:
        self.plan = plan

    def render_assessed(
        self, image: Image.Image, options: Options
    ) -> tuple[Image.Image, Quality | None]:
        width = image.width
        shift, score = self.plan[width]
        yy, xx = np.mgrid[0 : image.height, 0:width]
        disc = (yy - image.height // 2) ** 2 + (xx - width // 2 - shift) ** 2 < 30**2
        picture = Image.fromarray(np.where(disc, 255, 0).astype(np.uint8))
        if score is None:
            return picture, None
        return picture, Quality(score, ["uncertain_edges"] if score < 0.5 else [], {}, "basic")


def _scenes(tmp_path: Path) -> Path:
    lines = ["image,mask,category"]
    for width in (100, 110, 120, 130):
        yy, xx = np.mgrid[0:100, 0:width]
        disc = (yy - 50) ** 2 + (xx - width // 2) ** 2 < 30**2
        Image.new("RGB", (width, 100), (30, 60, 200)).save(tmp_path / f"{width}.png")
        Image.fromarray(np.where(disc, 255, 0).astype(np.uint8)).save(tmp_path / f"{width}m.png")
        lines.append(f"{width}.png,{width}m.png,{'near' if width < 120 else 'far'}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "m.csv"


def test_runner_scores_model_columns_and_reports_them(tmp_path: Path) -> None:
    from worker.eval.report import format_table, render_html

    items = load_manifest(_scenes(tmp_path))
    # shifts 0 / 4 / 20 px: IoU 1, about 0.84 and about 0.35; one photo not scored
    engine = KnownScores({100: (0, 0.95), 110: (4, 0.6), 120: (20, 0.3), 130: (0, None)})

    def decode(data: bytes) -> Image.Image:
        return Image.open(io.BytesIO(data)).convert("RGB")

    result = run_eval(
        items, build_methods([], [], [], []), decode=decode, engine=engine, review_below=0.7
    )
    rows = [row["results"]["u2net"] for row in result.items]
    assert [r["score"] for r in rows] == [0.95, 0.6, 0.3, None]
    assert [r["review"] for r in rows] == [False, True, True, None]
    assert rows[2]["flags"] == ["uncertain_edges"]
    assert rows[3]["flags"] == []
    q = result.summary["u2net"]["quality"]
    assert q["n"] == 3
    assert q["bad_80"] == 1
    assert q["auroc_80"] == 1.0
    assert q["review"] == 2
    assert q["review_bad"] == 1
    assert result.by_category["far"]["u2net"]["quality"]["n"] == 1
    assert result.to_json()["definitions"]["quality"]["review_below"] == 0.7

    assert "u2net (basic)" in format_table(result)
    page = render_html(result, manifest="m.csv")
    assert "<h2>Quality score</h2>" in page
    (plot,) = re.findall(r'<svg[^>]*class="scatter".*?</svg>', page, re.S)
    assert plot.count("<circle") == 3  # the scored photos
    assert "score 0.300, IoU" in plot
    assert "<script" not in page
