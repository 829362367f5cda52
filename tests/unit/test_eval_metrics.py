"""cutout eval's pure parts: metrics with hand-computed answers, aggregation, method and
manifest parsing, the GrabCut baseline and the reports on synthetic pictures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.errors import InvalidOption
from worker.eval import metrics
from worker.eval.manifest import ManifestError, load_manifest
from worker.eval.methods import build_methods, parse_variant
from worker.eval.runner import aggregate


def square(top: int, left: int, size: int, shape: tuple[int, int] = (20, 20)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[top : top + size, left : left + size] = 255
    return mask


# --- metrics --------------------------------------------------------------------------


def test_identical_masks_score_perfectly() -> None:
    truth = square(5, 5, 10)
    result = metrics.evaluate(truth, truth.copy())
    assert result == {"iou": 1.0, "f_score": 1.0, "f1": 1.0, "mae": 0.0, "boundary_f1": 1.0}


def test_disjoint_masks_score_zero() -> None:
    result = metrics.evaluate(square(0, 0, 5), square(10, 10, 5))
    assert result["iou"] == 0.0
    assert result["f_score"] == 0.0
    assert result["f1"] == 0.0
    assert result["boundary_f1"] == 0.0
    assert result["mae"] == pytest.approx(50 / 400)  # 25 + 25 pixels wrong of 400


def test_partial_overlap_hand_computed() -> None:
    truth = np.zeros((20, 20), np.uint8)
    truth[0:10, 0:10] = 255  # 100 px
    pred = np.zeros((20, 20), np.uint8)
    pred[0:10, 0:5] = 255  # 50 px, all inside the truth: precision 1, recall 0.5
    result = metrics.evaluate(pred, truth)
    assert result["iou"] == pytest.approx(0.5)
    assert result["f_score"] == pytest.approx(1.3 * 0.5 / (0.3 + 0.5))  # 0.8125
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["mae"] == pytest.approx(50 / 400)


def test_half_shifted_overlap() -> None:
    # intersection 50, union 150; precision = recall = 0.5
    pred, truth = square(0, 5, 10), square(0, 0, 10)
    assert metrics.iou(pred, truth) == pytest.approx(1 / 3)
    assert metrics.f_score(pred, truth) == pytest.approx(0.5)
    assert metrics.f_score(pred, truth, beta2=1.0) == pytest.approx(0.5)


def test_threshold_is_128_and_mae_is_soft() -> None:
    truth = np.full((4, 4), 255, np.uint8)
    assert metrics.iou(np.full((4, 4), 128, np.uint8), truth) == 1.0
    assert metrics.iou(np.full((4, 4), 127, np.uint8), truth) == 0.0
    assert metrics.mae(np.full((4, 4), 128, np.uint8), truth) == pytest.approx(127 / 255)


def test_empty_masks() -> None:
    empty = np.zeros((8, 8), np.uint8)
    assert metrics.evaluate(empty, empty)["iou"] == 1.0
    assert metrics.evaluate(empty, empty)["boundary_f1"] == 1.0
    assert metrics.evaluate(empty, empty)["f_score"] == 1.0
    one = square(2, 2, 3, (8, 8))
    assert metrics.evaluate(empty, one)["iou"] == 0.0
    assert metrics.evaluate(empty, one)["f_score"] == 0.0
    assert metrics.evaluate(one, empty)["boundary_f1"] == 0.0


def test_boundary_ignores_the_image_frame() -> None:
    full = np.ones((10, 10), bool)
    assert not metrics.boundary(full).any()
    ring = metrics.boundary(square(2, 2, 5, (10, 10)) >= 128)
    assert ring.sum() == 16  # the 5×5 square's outline: 25 − 9


def test_boundary_f1_tolerates_a_2px_shift() -> None:
    truth = square(20, 20, 30, (80, 80))
    shifted = square(22, 20, 30, (80, 80))
    assert metrics.iou(shifted, truth) < 1.0
    assert metrics.boundary_f1(shifted, truth) == 1.0


def test_boundary_f1_drops_with_a_10px_shift() -> None:
    truth = square(20, 20, 30, (80, 80))
    shifted = square(30, 20, 30, (80, 80))
    score = metrics.boundary_f1(shifted, truth)
    # the left and right edges (within 3 px of each other) still match; the top and bottom
    # edges (10 px apart) and the ends of the sides near them do not
    assert 0.3 < score < 0.8
    assert score < metrics.boundary_f1(square(22, 20, 30, (80, 80)), truth)


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.evaluate(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


# --- aggregation ------------------------------------------------------------------------


def _row(category: str, iou: float | None, error: str | None = None) -> dict:
    result = (
        {"error": "boom"}
        if iou is None
        else {"iou": iou, "f_score": iou, "f1": iou, "mae": 1 - iou, "boundary_f1": iou,
              "seconds": 0.5}
    )  # fmt: skip
    return {"image": "x", "category": category, "error": error, "results": {"m": result}}


def test_aggregate_means_over_images_and_categories() -> None:
    rows = [_row("a", 1.0), _row("a", 0.5), _row("b", 0.0), _row("b", None), _row("b", 1.0, "bad")]
    summary, by_category = aggregate(rows, ["m"])
    # overall: mean over the three good images, not over categories' means
    assert summary["m"]["iou"] == pytest.approx(0.5)
    assert summary["m"]["n"] == 3
    assert summary["m"]["errors"] == 2
    assert summary["m"]["seconds_per_image"] == 0.5
    assert by_category["a"]["m"]["iou"] == pytest.approx(0.75)
    assert by_category["b"]["m"]["iou"] == 0.0
    assert by_category["b"]["m"]["n"] == 1
    assert by_category["b"]["m"]["errors"] == 2
    assert summary["m"]["mae"] == pytest.approx(0.5)


def test_aggregate_with_no_good_rows_gives_none() -> None:
    summary, _ = aggregate([_row("a", None)], ["m"])
    assert summary["m"]["iou"] is None
    assert summary["m"]["n"] == 0


# --- methods ------------------------------------------------------------------------------


def test_methods_default_to_u2net() -> None:
    (method,) = build_methods([], [], [], [])
    assert method.name == "u2net"
    assert method.render_options().mask_only


def test_methods_cross_models_with_variants() -> None:
    methods = build_methods(
        ["u2net", "u2netp"],
        ["post-process=false"],
        ["pp:post_process=true", "am:alpha_matting=true,alpha-matting-erode-size=5"],
        ["grabcut"],
    )
    names = [m.name for m in methods]
    assert names == ["u2net", "u2net+pp", "u2net+am", "u2netp", "u2netp+pp", "u2netp+am",
                     "grabcut"]  # fmt: skip
    am = methods[2]
    assert am.options.alpha_matting
    assert am.options.alpha_matting_erode_size == 5
    assert not am.render_options().mask_only  # matting shows only in the cutout's alpha
    assert methods[1].render_options().mask_only
    assert methods[1].describe() == {
        "name": "u2net+pp", "kind": "model", "model": "u2net", "options": {"post_process": True}
    }  # fmt: skip


def test_standalone_variant_and_refinement() -> None:
    methods = build_methods([], [], ["gf:model=u2netp,refine=guided,refine_radius=4"], [])
    assert [m.name for m in methods] == ["gf"]
    assert methods[0].options.model == "u2netp"
    assert methods[0].refine is not None
    assert methods[0].refine.radius == 4


@pytest.mark.parametrize(
    ("models", "options", "variants", "baselines", "match"),
    [
        (["u3net"], [], [], [], "model must be one of"),
        (["u2net"], ["post_process"], [], [], "key=value"),
        (["u2net"], ["bogus=1"], [], [], "unknown option"),
        (["u2net"], ["crop=true"], [], [], "geometry"),
        (["u2net"], ["bg_color=#ffffff"], [], [], "geometry"),
        (["u2net"], ["model=u2netp"], [], [], "--model"),
        (["u2net", "u2net"], [], [], [], "twice"),
        (["u2net"], [], ["no colon"], [], "NAME:"),
        ([], [], ["pp:post_process=true"], [], "needs at least one --model"),
        (["u2net"], [], ["r:refine=magic"], [], "refine must be"),
        (["u2netp"], ["fast=true"], [], [], "fast"),
        ([], [], [], ["photoshop"], "baseline"),
    ],
)
def test_methods_refuse_bad_input(models, options, variants, baselines, match) -> None:
    with pytest.raises(InvalidOption, match=match):
        build_methods(models, options, variants, baselines)


def test_parse_variant_allows_no_options() -> None:
    assert parse_variant("plain:") == ("plain", {})


# --- manifest ---------------------------------------------------------------------------


def _write_item(folder: Path, name: str, size: tuple[int, int] = (40, 30)) -> None:
    Image.new("RGB", size, (200, 10, 10)).save(folder / f"{name}.png")
    Image.new("L", size, 255).save(folder / f"{name}.mask.png")


def test_manifest_paths_are_relative_to_its_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _write_item(tmp_path / "sub", "a")
    _write_item(tmp_path / "sub", "b")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "image,mask,category,extra\nsub/a.png,sub/a.mask.png,x,1\nsub/b.png,sub/b.mask.png,y,2\n"
    )
    items = load_manifest(manifest)
    assert [i.image_path for i in items] == [tmp_path / "sub/a.png", tmp_path / "sub/b.png"]
    assert [i.category for i in load_manifest(manifest, category="y")] == ["y"]
    assert len(load_manifest(manifest, limit=1)) == 1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("image,category\na.png,x\n", "missing column"),
        ("image,mask,category\nmissing.png,a.mask.png,x\n", "missing.png not found"),
        ("image,mask,category\na.png,,x\n", "empty mask"),
        ("image,mask,category\n", "no items"),
    ],
)
def test_manifest_errors(tmp_path: Path, text: str, match: str) -> None:
    _write_item(tmp_path, "a")
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(ManifestError, match=match):
        load_manifest(manifest)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "nope.csv")


# --- GrabCut, the runner without a model, the reports --------------------------------


def _scene(tmp_path: Path) -> Path:
    """A red disc on a textured blue background, and its truth; plus a mis-sized mask."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:160]
    disc = (yy - 60) ** 2 + (xx - 80) ** 2 < 35**2
    pixels = np.empty((120, 160, 3), np.uint8)
    pixels[...] = (30, 60, 200)
    pixels = np.clip(pixels + rng.integers(-20, 20, pixels.shape), 0, 255).astype(np.uint8)
    pixels[disc] = (220, 40, 30)
    Image.fromarray(pixels).save(tmp_path / "disc.png")
    Image.fromarray(np.where(disc, 255, 0).astype(np.uint8)).save(tmp_path / "disc.mask.png")
    Image.new("L", (10, 10)).save(tmp_path / "small.mask.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "image,mask,category\ndisc.png,disc.mask.png,shapes\ndisc.png,small.mask.png,broken\n"
    )
    return manifest


def test_grabcut_runner_and_reports(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    from worker.eval.report import bar_chart, format_table, render_html
    from worker.eval.runner import run_eval

    items = load_manifest(_scene(tmp_path))
    methods = build_methods([], [], [], ["grabcut"])

    def decode(data: bytes) -> Image.Image:
        import io

        return Image.open(io.BytesIO(data)).convert("RGB")

    result = run_eval(items, methods, decode=decode, thumbs=True)
    good, broken = result.items
    assert good["results"]["grabcut"]["iou"] > 0.9  # an easy scene
    assert "10x10" in broken["error"]
    assert result.summary["grabcut"]["n"] == 1
    assert result.summary["grabcut"]["errors"] == 1
    assert result.failed == 1

    table = format_table(result)
    assert "broken (1)" in table
    assert "shapes (1)" in table
    assert "overall (2)" in table
    document = result.to_json("m.csv")
    assert set(document) >= {"summary", "by_category", "items"}
    json.dumps(document)  # serialisable
    page = render_html(result, manifest="m.csv")
    assert page.count("<svg") == len(metrics.METRICS)
    assert "data:image/jpeg;base64," in page
    assert "data:image/png;base64," in page
    assert "<svg" in bar_chart(result, "mae")


def test_guided_filter_snaps_a_soft_shifted_edge_to_the_image_edge() -> None:
    from scipy import ndimage

    from worker.eval.refine import guided_filter

    pixels = np.zeros((60, 100, 3), np.uint8)
    pixels[:, :50] = (200, 50, 50)
    pixels[:, 50:] = (40, 160, 60)
    truth = np.zeros((60, 100), np.uint8)
    truth[:, :50] = 255
    # a model-like mask: blurred and 2 px off
    soft = np.roll(ndimage.gaussian_filter(truth.astype(float), 4).astype(np.uint8), 2, axis=1)
    refined = guided_filter(Image.fromarray(pixels), soft, radius=8, eps=1e-4)
    assert refined.shape == soft.shape
    assert refined.dtype == np.uint8
    assert metrics.iou(soft, truth) < 0.95
    assert metrics.iou(refined, truth) == 1.0
