"""The validation gate of ``cutout tune`` (worker/tune/gate.py, worker/tune/select.py):
a model must beat its base on IoU and on boundary F1 (each within its tolerance, 0 by
default), else it is refused, naming the measure, by how much, and in the exit code; the
cross-validation folds, their pooling and the epoch count are chosen by the same rule.

The first tests are pure (no torch). The last ones run a real one-step tune of u2netp on
three generated photos, with the validation scores scripted, to show that the refusal
reaches the command line and that nothing is registered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.tune.gate import Tolerance, Verdict, closest, folds, pick_best, pool

BASE = {"iou": 0.800, "boundary_f1": 0.700}
#: the tolerances before cross-validation (still available as options)
LOOSE = Tolerance(iou=0.005, boundary_f1=0.01)


def scores(iou: float, bf1: float) -> dict[str, float]:
    return {"iou": iou, "boundary_f1": bf1}


def test_iou_up_and_boundary_f1_down_beyond_its_tolerance_is_refused() -> None:
    # what was registered before: IoU +0.015, boundary F1 -0.081
    verdict = Verdict(BASE, scores(0.815, 0.619), LOOSE)
    assert not verdict.passed
    assert verdict.worse == ("boundary_f1",)
    assert "boundary F1 fell by 0.0810 (0.7000 → 0.6190)" in verdict.failures()
    assert "tolerance 0.01" in verdict.failures()
    assert "IoU" not in verdict.failures()
    assert verdict.exit_code == 4


def test_by_default_both_measures_must_rise() -> None:
    assert Verdict(BASE, scores(0.801, 0.701), Tolerance()).passed
    # one up, the other a hair down: refused, and the exit code names the one that fell
    refused = Verdict(BASE, scores(0.810, 0.6995), Tolerance())
    assert not refused.passed
    assert refused.exit_code == 4
    # one up, the other unchanged: not better in both, nothing fell (exit 1)
    tied = Verdict(BASE, scores(0.810, 0.700), Tolerance())
    assert (tied.passed, tied.worse, tied.exit_code) == (False, (), 1)


def test_both_within_their_tolerance_and_one_better_is_kept() -> None:
    verdict = Verdict(BASE, scores(0.810, 0.695), LOOSE)
    assert verdict.passed
    assert verdict.exit_code == 0
    assert verdict.deltas() == "ΔIoU +0.0100, Δboundary F1 -0.0050"
    # boundary F1 alone may carry it, IoU within its tolerance
    assert Verdict(BASE, scores(0.796, 0.750), LOOSE).passed
    # within the tolerances but better in neither: refused
    assert not Verdict(BASE, scores(0.799, 0.699), LOOSE).passed


def test_each_refusal_says_which_measure_fell() -> None:
    assert Verdict(BASE, scores(0.780, 0.720), LOOSE).exit_code == 3  # IoU
    both = Verdict(BASE, scores(0.780, 0.600), LOOSE)
    assert both.exit_code == 5
    assert "IoU fell by 0.0200" in both.failures()
    assert "boundary F1 fell by 0.1000" in both.failures()
    # the same scores as the base: nothing fell, nothing rose
    assert Verdict(BASE, BASE, Tolerance()).exit_code == 1
    # tolerances are settings
    assert Verdict(BASE, scores(0.815, 0.619), Tolerance(boundary_f1=0.1)).passed


def test_the_best_epoch_is_the_best_the_gate_passes() -> None:
    epochs = [scores(0.815, 0.619), scores(0.805, 0.710), scores(0.803, 0.720)]
    # the highest IoU is refused by the gate; of the others the larger IoU + boundary F1
    assert pick_best(BASE, epochs, Tolerance()) == 2
    assert pick_best(BASE, epochs[:1], Tolerance()) is None
    assert closest(epochs) == 0  # what a refusal reports, and --allow-worse keeps


def test_folds_cover_every_photo_once_and_repeat_with_the_seed() -> None:
    made = folds(20, 4, seed=3)
    assert len(made) == 4
    assert sorted(i for f in made for i in f) == list(range(20))
    assert {len(f) for f in made} == {5}
    assert folds(20, 4, seed=3) == made
    assert folds(20, 4, seed=4) != made
    assert [len(f) for f in folds(7, 4, seed=0)] == [2, 2, 2, 1]
    assert len(folds(3, 4, seed=0)) == 3  # capped at the photos
    with pytest.raises(ValueError, match="at least 2"):
        folds(1, 4, seed=0)


def test_pool_weights_each_fold_by_its_photos() -> None:
    pooled = pool([{**scores(0.9, 0.8), "n": 3, "errors": 0}, {**scores(0.5, 0.4), "n": 1}])
    assert pooled["iou"] == pytest.approx(0.8)
    assert pooled["boundary_f1"] == pytest.approx(0.7)
    assert pooled["n"] == 4
    assert "errors" not in pooled


def _cross(fold_base: list[dict[str, float]], fold_epochs: list[list[dict[str, float]]]):  # type: ignore[no-untyped-def]
    from worker.tune.select import CrossRuns

    runs = CrossRuns(tolerance=Tolerance(), allow_worse=False)
    said: list[str] = []
    for base, epochs in zip(fold_base, fold_epochs, strict=True):
        runs.add_fold({**base, "n": 5}, [{**e, "n": 5} for e in epochs], said.append)
    runs.pool(said.append)
    return runs, said


def test_cross_validation_chooses_the_epoch_count_that_beats_the_base_in_both() -> None:
    # four folds of five photos; after 1 epoch IoU is up but boundary F1 down on the
    # pooled twenty photos, after 2 both are up, after 3 IoU fell back
    base = [scores(0.80, 0.70), scores(0.90, 0.85), scores(0.70, 0.60), scores(0.85, 0.80)]
    epochs = [
        [scores(0.82, 0.69), scores(0.81, 0.71), scores(0.79, 0.70)],
        [scores(0.91, 0.84), scores(0.905, 0.855), scores(0.89, 0.86)],
        [scores(0.72, 0.59), scores(0.71, 0.61), scores(0.69, 0.61)],
        [scores(0.86, 0.79), scores(0.852, 0.802), scores(0.84, 0.81)],
    ]
    runs, said = _cross(base, epochs)
    assert runs.base["iou"] == pytest.approx(0.8125)
    assert runs.kept == 1
    assert runs.chosen_epoch() == 2
    verdict = runs.verdict()
    assert verdict.passed
    assert verdict.delta("iou") == pytest.approx(0.00675)
    assert runs.history[1]["folds_won"] == 4
    assert any("cross-validation, 2 epochs" in line and "passes the gate" in line for line in said)
    record = runs.record()
    assert record["method"] == "cross-validation"
    assert record["best_epoch"] == 2
    assert record["folds"][0]["tuned"] == scores(0.81, 0.71)


def test_cross_validation_refuses_when_the_pooled_photos_say_worse() -> None:
    from worker.tune.select import refusal

    # one fold gains a lot, three lose a little: the 20 photos together say worse on
    # boundary F1, whatever the lucky fold says
    base = [scores(0.80, 0.70)] * 4
    epochs = [
        [scores(0.86, 0.76)],
        [scores(0.81, 0.66)],
        [scores(0.80, 0.67)],
        [scores(0.79, 0.68)],
    ]
    runs, _ = _cross(base, epochs)
    assert runs.kept is None
    verdict = runs.verdict()
    assert not verdict.passed
    assert verdict.exit_code == 4
    message = refusal(runs, "u2netp")
    assert message.startswith("not registered")
    assert "boundary F1 fell by 0.0075 (0.7000 → 0.6925)" in message


def _tiny_tune(tmp_path: Path, model_home: Path) -> tuple[Path, Path]:
    """Three generated photos and a model home with u2netp: (manifest, home)."""
    if not (model_home / "u2netp.onnx").exists():
        pytest.skip("u2netp weights not fetched (cutout models fetch u2netp)")
    from testkit.vertical import write

    manifests = write(tmp_path / "data", 3, seed=4, test_share=0.34)
    home = tmp_path / "models"
    home.mkdir()
    (home / "u2netp.onnx").symlink_to(model_home / "u2netp.onnx")
    return manifests["all"], home


def _scripted(monkeypatch: pytest.MonkeyPatch, *results: dict[str, float]) -> None:
    """Validation gives ``results`` in turn (the base first), instead of measuring."""
    from worker.tune import fit

    queue = list(results)

    def evaluate(*_: Any) -> dict[str, Any]:
        return {**queue.pop(0), "mae": 0.05, "n": 1}

    monkeypatch.setattr(fit, "evaluate", evaluate)


@pytest.mark.slow
def test_cutout_tune_refuses_a_model_whose_boundary_f1_fell(
    tmp_path: Path,
    model_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("torch")
    from cutout.cli import main

    manifest, home = _tiny_tune(tmp_path, model_home)
    _scripted(monkeypatch, BASE, scores(0.815, 0.619))
    args = ["tune", "--manifest", str(manifest), "--base", "u2netp", "--name", "edges"]
    args += ["--layers", "head", "--epochs", "1", "--batch-size", "2", "--max-steps", "1"]
    args += ["--val-split", "0.34", "--threads", "1", "--model-home", str(home)]
    args += ["--tolerance-iou", "0.005", "--tolerance-bf1", "0.01"]
    assert main(args) == 4
    err = capsys.readouterr().err
    assert "not registered" in err
    assert "boundary F1 fell by 0.0810" in err
    assert not (home / "custom" / "edges.onnx").exists()
    # within a wider tolerance it is registered, and its record holds the gate
    _scripted(monkeypatch, BASE, scores(0.815, 0.619))
    assert main([*args, "--tolerance-bf1", "0.1"]) == 0
    record = json.loads((home / "custom" / "edges.json").read_text())
    assert record["validation"]["gate"]["passed"] is True
    assert record["validation"]["gate"]["tolerance"] == {"iou": 0.005, "boundary_f1": 0.1}
    assert record["validation"]["method"] == "held-out"
    assert record["validation"]["gate"]["delta"]["boundary_f1"] == pytest.approx(-0.081)


@pytest.mark.slow
def test_cutout_tune_with_defaults_refuses_what_cross_validation_says_loses(
    tmp_path: Path,
    model_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Defaults: 3 photos, so 3 folds of one; each fold's photo is scored (scripted) by
    the run that did not train on it. One fold gains, two lose on boundary F1: the pooled
    photos say worse, so no run on all photos is made and nothing is registered."""
    pytest.importorskip("torch")
    from cutout.cli import main

    manifest, home = _tiny_tune(tmp_path, model_home)
    _scripted(
        monkeypatch,
        *(BASE, scores(0.86, 0.76)),
        *(BASE, scores(0.81, 0.66)),
        *(BASE, scores(0.80, 0.67)),
    )
    args = ["tune", "--manifest", str(manifest), "--base", "u2netp", "--name", "lucky"]
    args += ["--max-steps", "1", "--threads", "1", "--model-home", str(home)]
    assert main(args) == 4
    err = capsys.readouterr().err
    assert "3-fold cross-validation" in err
    assert "fold 3/3  epoch 1/3  step 3/" in err  # progress, across the runs
    assert "boundary F1 fell by 0.0033 (0.7000 → 0.6967)" in err
    assert "training on all" not in err
    assert not (home / "custom" / "lucky.onnx").exists()


def test_a_tolerance_out_of_range_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from cutout.cli import main

    args = ["tune", "--manifest", str(tmp_path / "none.csv"), "--base", "u2netp"]
    args += ["--name", "x", "--model-home", str(tmp_path), "--tolerance-bf1", "-0.1"]
    assert main(args) == 2
    assert "--tolerance-bf1" in capsys.readouterr().err


def test_the_base_defaults_to_u2net_the_base_that_gained_on_real_photos() -> None:
    """docs/tune.md section 5: on 20 real photos u2net gained on held-back photos in IoU
    and boundary F1 in every split, u2netp in one of three; a shop that names no base
    gets u2net."""
    from cutout.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["tune", "--manifest", "m.csv", "--name", "shop"])
    assert args.base == "u2net"
    assert (
        parser.parse_args(["tune", "--manifest", "m.csv", "--name", "s", "--base", "u2netp"]).base
        == "u2netp"
    )
