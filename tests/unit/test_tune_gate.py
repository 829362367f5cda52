"""The validation gate of ``cutout tune`` (worker/tune/gate.py): a model worse than its
base on IoU or boundary F1 beyond a tolerance is refused, naming the measure, by how much,
and in the exit code; the best epoch is chosen by the same rule.

The first tests are pure (no torch). The last ones run a real one-step tune of u2netp on
three generated photos (about 10 s here), with the validation scores scripted, to show
that the refusal reaches the command line and that nothing is registered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.tune.gate import Tolerance, Verdict, closest, pick_best

BASE = {"iou": 0.800, "boundary_f1": 0.700}


def scores(iou: float, bf1: float) -> dict[str, float]:
    return {"iou": iou, "boundary_f1": bf1}


def test_iou_up_and_boundary_f1_down_beyond_its_tolerance_is_refused() -> None:
    # what was registered before: IoU +0.015, boundary F1 -0.081
    verdict = Verdict(BASE, scores(0.815, 0.619), Tolerance())
    assert not verdict.passed
    assert verdict.worse == ("boundary_f1",)
    assert "boundary F1 fell by 0.0810 (0.7000 → 0.6190)" in verdict.failures()
    assert "tolerance 0.01" in verdict.failures()
    assert "IoU" not in verdict.failures()
    assert verdict.exit_code == 4


def test_both_within_their_tolerance_and_one_better_is_kept() -> None:
    verdict = Verdict(BASE, scores(0.810, 0.695), Tolerance())
    assert verdict.passed
    assert verdict.exit_code == 0
    assert verdict.deltas() == "ΔIoU +0.0100, Δboundary F1 -0.0050"
    # boundary F1 alone may carry it, IoU within its tolerance
    assert Verdict(BASE, scores(0.796, 0.750), Tolerance()).passed


def test_each_refusal_says_which_measure_fell() -> None:
    assert Verdict(BASE, scores(0.780, 0.720), Tolerance()).exit_code == 3  # IoU
    both = Verdict(BASE, scores(0.780, 0.600), Tolerance())
    assert both.exit_code == 5
    assert "IoU fell by 0.0200" in both.failures()
    assert "boundary F1 fell by 0.1000" in both.failures()
    # the same scores as the base: nothing fell, nothing rose
    assert Verdict(BASE, BASE, Tolerance()).exit_code == 1
    # tolerances are settings
    assert Verdict(BASE, scores(0.815, 0.619), Tolerance(boundary_f1=0.1)).passed


def test_the_best_epoch_is_the_best_the_gate_passes() -> None:
    epochs = [scores(0.815, 0.619), scores(0.805, 0.710), scores(0.803, 0.720)]
    # the highest IoU is refused by the gate: the next one is kept, not the base
    assert pick_best(BASE, epochs, Tolerance()) == 1
    assert pick_best(BASE, epochs[:1], Tolerance()) is None
    assert closest(epochs) == 0  # what a refusal reports, and --allow-worse keeps


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
    from worker.tune import train

    queue = list(results)

    def evaluate(*_: Any) -> dict[str, Any]:
        return {**queue.pop(0), "mae": 0.05, "n": 1}

    monkeypatch.setattr(train, "evaluate", evaluate)


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
    assert record["validation"]["gate"]["delta"]["boundary_f1"] == pytest.approx(-0.081)


def test_a_tolerance_out_of_range_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from cutout.cli import main

    args = ["tune", "--manifest", str(tmp_path / "none.csv"), "--base", "u2netp"]
    args += ["--name", "x", "--model-home", str(tmp_path), "--tolerance-bf1", "-0.1"]
    assert main(args) == 2
    assert "--tolerance-bf1" in capsys.readouterr().err
