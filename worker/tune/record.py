"""The record ``cutout tune`` writes beside a tuned model: where it came from, how it was
trained, what it measured on validation and what the gate said (worker/engine/custom.py
reads it back). Imports torch only to name its version."""

from __future__ import annotations

import json
import platform
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.onnx.modelfile import sha256_of
from worker.engine.models import get_spec
from worker.tune.gate import Verdict

if TYPE_CHECKING:
    from worker.tune.run import Run
    from worker.tune.select import Selection


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
    run: Run,
    selection: Selection,
    verdict: Verdict,
    data: bytes,
    parity: float,
    steps: int,
    seconds: float,
) -> dict[str, Any]:
    """The model's record: where it came from, how it was trained, what it measured."""
    from worker.tune.export import TOLERANCE  # needs torch: only a tune builds records

    config, recipe = run.config, run.recipe
    train_items, val_items = selection.counts()
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
            "train_items": train_items,
            "val_items": val_items,
            "val": str(config.val) if config.val else None,
        },
        "hyperparameters": {
            "layers": recipe.layers,
            "epochs": config.epochs,
            "batch_size": recipe.batch_size,
            "lr": recipe.lr,
            "l2sp": recipe.l2sp,
            "ema": recipe.ema,
            "distill": recipe.distill,
            "swap": recipe.swap,
            "folds": None if config.val or config.val_split else config.folds,
            "val_split": config.val_split,
            "seed": config.seed,
            "device": str(run.device),
            "steps": steps,
            "max_steps": config.max_steps,
            "allow_worse": config.allow_worse,
        },
        "versions": versions(),
        "validation": selection.record(),
        "export": {"max_abs_diff": parity, "tolerance": TOLERANCE},
        "seconds": round(seconds, 1),
    }


def record_json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True)
