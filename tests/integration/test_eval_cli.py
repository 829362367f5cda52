"""``cutout eval`` end to end: the real command, the real model (u2netp, the small one) and
OpenCV's GrabCut on four items of ../shared/eval/gt, and the quality score's figures
recomputed from the per-photo rows. Skips when the evaluation data or the weights are
absent; kept to four small items because CI machines have two cores."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"
GT = EVAL / "gt" / "manifest.csv"
# one per category, the smaller pictures first
WANTED = ("logos_graphics", "low_contrast", "people", "products")
METRIC_NAMES = {"iou", "f_score", "f1", "mae", "boundary_f1"}
QUALITY_KEYS = {
    "level", "n", "mean_score", "score_mae", "bad_90", "bad_80", "auroc_90", "auroc_80",
    "spearman", "caught_10", "caught_20", "review_below", "review", "review_bad",
}  # fmt: skip


def _cutout(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cutout", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "CUTOUT_ORT_THREADS": "2"},
    )


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not GT.is_file():
        pytest.skip(f"evaluation data absent: {GT}")
    from shared.contract.settings import load_settings

    if not (load_settings().model_home / "u2netp.onnx").is_file():
        pytest.skip("u2netp weights absent: run `cutout models fetch u2netp`")
    pytest.importorskip("cv2")
    with GT.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    picked = [next(r for r in rows if r["category"] == c) for c in WANTED]
    folder = tmp_path_factory.mktemp("eval")
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mask", "category"])
        for row in picked:  # absolute paths: the manifest lives elsewhere than the data
            writer.writerow([GT.parent / row["image"], GT.parent / row["mask"], row["category"]])
    return manifest


def test_eval_u2netp_against_grabcut(small_manifest: Path, tmp_path: Path) -> None:
    out_json, out_html = tmp_path / "out" / "eval.json", tmp_path / "eval.html"
    proc = _cutout(
        "eval",
        "--manifest", str(small_manifest),
        "--model", "u2netp",
        "--baseline", "grabcut",
        "--json", str(out_json),
        "--report", str(out_html),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # the terminal table: categories as columns, IoU and F rows per method
    header = proc.stdout.splitlines()[0]
    for category in WANTED:
        assert f"{category} (1)" in header
    assert "overall (4)" in header
    assert "u2netp" in proc.stdout
    assert "grabcut" in proc.stdout

    document = json.loads(out_json.read_text())
    assert set(document) >= {"summary", "by_category", "items"}
    assert set(document["summary"]) == {"u2netp", "grabcut"}
    assert set(document["by_category"]) == set(WANTED)
    for block in document["summary"].values():
        assert set(block) >= METRIC_NAMES
        assert block["n"] == 4
        assert block["errors"] == 0
        for name in METRIC_NAMES:
            assert 0.0 <= block[name] <= 1.0
    assert len(document["items"]) == 4
    for item in document["items"]:
        assert item["error"] is None
        assert set(item["results"]["u2netp"]) >= METRIC_NAMES
    u2netp, grabcut = document["summary"]["u2netp"], document["summary"]["grabcut"]
    assert u2netp["iou"] > 0.6
    assert u2netp["iou"] > grabcut["iou"]
    assert u2netp["mae"] < 0.1

    # the u2netp column is scored (basic, the default), GrabCut is not
    assert document["summary"]["grabcut"]["quality"] is None
    assert "score" not in document["items"][0]["results"]["grabcut"]
    quality = document["summary"]["u2netp"]["quality"]
    assert set(quality) == QUALITY_KEYS
    assert quality["level"] == "basic"
    assert quality["n"] == 4
    for item in document["items"]:
        assert 0.0 <= item["results"]["u2netp"]["score"] <= 1.0

    page = out_html.read_text()
    assert page.startswith("<!doctype html>")
    # a chart per metric, and the u2netp column's score against IoU
    assert page.count("<svg") == len(METRIC_NAMES) + 1
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="scatter"') == 1
    assert page.count("data:image/jpeg;base64,") >= 4  # the worst images, embedded
    assert "data:image/png;base64," in page
    assert 'src="http' not in page  # self-contained


def _pairwise_auroc(risk: list[float], bad: list[bool]) -> float | None:
    """P(a bad photo's risk > a good one's), ties half, by counting every pair."""
    pairs = [(b, g) for b, is_bad in zip(risk, bad, strict=True) if is_bad
             for g, is_good in zip(risk, bad, strict=True) if not is_good]  # fmt: skip
    if not pairs:
        return None
    return sum(1.0 if b > g else 0.5 if b == g else 0.0 for b, g in pairs) / len(pairs)


def test_eval_full_score_figures_match_the_rows(small_manifest: Path, tmp_path: Path) -> None:
    out_json, out_html = tmp_path / "eval.json", tmp_path / "eval.html"
    proc = _cutout(
        "eval",
        "--manifest", str(small_manifest),
        "--model", "u2netp",
        "--option", "score=full",
        "--json", str(out_json),
        "--report", str(out_html),
        "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "u2netp (full)" in proc.stdout  # the terminal's quality table
    document = json.loads(out_json.read_text())
    rows = [item["results"]["u2netp"] for item in document["items"]]
    scores, ious = [r["score"] for r in rows], [r["iou"] for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    quality = document["summary"]["u2netp"]["quality"]
    below = quality["review_below"]  # CUTOUT_REVIEW_BELOW
    assert below == document["definitions"]["quality"]["review_below"]
    for r in rows:
        assert r["review"] == (r["score"] < below)
        assert isinstance(r["flags"], list)
    assert set(quality) == QUALITY_KEYS
    assert quality["level"] == "full"
    assert quality["n"] == 4
    risk = [1 - s for s in scores]
    for threshold in (0.9, 0.8):
        bad = [iou < threshold for iou in ious]
        assert quality[f"bad_{round(threshold * 100)}"] == sum(bad)
        expected = _pairwise_auroc(risk, bad)
        got = quality[f"auroc_{round(threshold * 100)}"]
        assert got == (None if expected is None else pytest.approx(expected, abs=1e-4))
    bad = [iou < 0.8 for iou in ious]
    assert quality["review"] == sum(s < below for s in scores)
    assert quality["review_bad"] == sum(s < below and b for s, b in zip(scores, bad, strict=True))
    assert quality["mean_score"] == pytest.approx(sum(scores) / 4, abs=1e-4)
    # per category: one photo each, its own score
    for item, r in zip(document["items"], rows, strict=True):
        block = document["by_category"][item["category"]]["u2netp"]["quality"]
        assert block["n"] == 1
        assert block["mean_score"] == pytest.approx(r["score"], abs=1e-4)
        assert block["auroc_80"] is None  # one photo: a class is always empty

    page = out_html.read_text()
    (plot,) = re.findall(r'<svg[^>]*class="scatter".*?</svg>', page, re.S)
    assert plot.count("<circle") == 4  # one dot per photo
    for r in rows:
        assert f"score {r['score']:.3f}, IoU {r['iou']:.3f}" in plot
    assert "<script" not in page
    assert 'src="http' not in page  # self-contained


def test_eval_usage_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("picture,truth\na.png,a.mask.png\n")
    proc = _cutout("eval", "--manifest", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert "missing column" in proc.stderr

    proc = _cutout("eval", "--manifest", str(tmp_path / "absent.csv"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "no such file" in proc.stderr

    missing = tmp_path / "missing.csv"
    missing.write_text("image,mask,category\nnope.jpg,nope.png,x\n")
    proc = _cutout("eval", "--manifest", str(missing), cwd=tmp_path)
    assert proc.returncode == 2
    assert "nope.jpg not found" in proc.stderr

    proc = _cutout("eval", "--manifest", str(missing), "--option", "crop=true", cwd=tmp_path)
    assert proc.returncode == 2
    assert "crop" in proc.stderr
