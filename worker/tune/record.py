"""The record ``cutout tune`` writes beside a tuned model: where it came from, how it was
trained, what it measured on validation and what the gate said (worker/engine/custom.py
reads it back). Imports torch only to name its version."""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.modelfile import sha256_of
from worker.engine.models import get_spec
from worker.tune import gate
from worker.tune.gate import Verdict

if TYPE_CHECKING:
    from worker.tune.train import Epochs, Run


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }


def build_record(
    run: Run, epochs: Epochs, verdict: Verdict, data: bytes, parity: float
) -> dict[str, Any]:
    """The model's record: where it came from, how it was trained, what it measured."""
    from worker.tune.export import TOLERANCE  # needs torch: only a tune builds records

    config = run.config
    assert epochs.kept is not None
    keys = ("iou", "boundary_f1", "mae", "n")
    return {
        "name": config.name,
        "base": {"name": config.base, "sha256": get_spec(config.base).sha256},
        "sha256": sha256_of(data),
        "bytes": len(data),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "manifest": {
            "path": str(config.manifest),
            "sha256": sha256_of(config.manifest),
            "items": len(run.items),
            "train_items": len(run.train_items),
            "val_items": len(run.val_items),
            "val": str(config.val) if config.val else None,
        },
        "hyperparameters": {
            "layers": config.layers,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "lr": run.lr,
            "val_split": None if config.val else config.val_split,
            "seed": config.seed,
            "device": str(run.device),
            "steps": run.steps,
            "max_steps": config.max_steps,
            "allow_worse": config.allow_worse,
        },
        "versions": versions(),
        "validation": {
            "base": {k: epochs.base[k] for k in keys},
            "tuned": {k: epochs.metrics[epochs.kept][k] for k in keys},
            "best_epoch": epochs.history[epochs.kept]["epoch"],
            "history": epochs.history,
            "gate": {
                "passed": verdict.passed,
                "tolerance": dataclasses.asdict(config.tolerance),
                "delta": {m: verdict.delta(m) for m, _ in gate.MEASURES},
            },
        },
        "export": {"max_abs_diff": parity, "tolerance": TOLERANCE},
        "seconds": round(epochs.seconds, 1),
    }


def record_json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True)
