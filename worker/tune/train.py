"""``cutout tune``: fine-tune U²-Net or U²-Netp on a manifest of labelled photos.

The path: split (``--val`` or a seeded ``--val-split``), base metrics on validation,
epochs of augmented training with deep supervision (the paper's loss: BCE summed over the
fused map and all six side outputs), validation after each epoch (IoU and boundary F1 of
:mod:`worker.eval.metrics`, on the mask the engine would serve: the fused output min-max
normalised and resized to the photo), the best epoch kept. A model that is not better than
its base on validation (mean IoU) is refused unless ``allow_worse``. The kept model is
exported with the base's exact I/O, checked against ONNX Runtime, and written with its
record into the model home (:mod:`worker.engine.custom`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from shared.modelfile import check_name, sha256_of
from worker.engine.custom import LocalModels
from worker.engine.families import U2NetFamily
from worker.engine.models import ensure_model, get_spec
from worker.eval import metrics
from worker.eval.manifest import Item, load_manifest
from worker.tune.data import Sample, batch_arrays, load_samples
from worker.tune.export import TOLERANCE, check_parity, export_onnx
from worker.tune.net import DECODER, HEAD, U2Net, from_onnx

LAYERS = ("head", "decoder", "all")
#: learning rates by what is trained: fewer weights take a larger step
DEFAULT_LR = {"head": 1e-3, "decoder": 1e-4, "all": 3e-5}


class TuneError(Exception):
    """The tune cannot run or its result is refused; ``exit_code`` for the command line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclasses.dataclass
class TuneConfig:
    manifest: Path
    base: str
    name: str
    home: Path
    val: Path | None = None
    val_split: float = 0.2
    layers: str = "decoder"
    epochs: int = 5
    batch_size: int = 4
    lr: float | None = None
    device: str = "cpu"
    seed: int = 0
    allow_worse: bool = False
    #: stop after this many training steps in total (tests, smoke runs); None: all
    max_steps: int | None = None
    #: torch CPU threads; None: torch's default (every core)
    threads: int | None = None


def pick_device(device: str) -> torch.device:
    """The torch device for ``device``; raises TuneError when CUDA is asked and absent."""
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            build = torch.version.cuda or "none (a CPU-only build)"
            raise TuneError(
                f"--device cuda: no usable CUDA device (this torch {torch.__version__} has "
                f"CUDA {build}); install a CUDA build of torch on a GPU machine, or use "
                "--device cpu",
                exit_code=2,
            )
        return torch.device("cuda")
    raise TuneError(f"--device must be cpu or cuda, got {device!r}", exit_code=2)


def split_items(
    items: Sequence[Item], val_share: float, seed: int
) -> tuple[list[Item], list[Item]]:
    """A fixed, seeded split: (train, validation); at least one item in each."""
    if len(items) < 2:
        raise TuneError("the manifest needs at least 2 items to hold some out for validation", 2)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = min(len(items) - 1, max(1, round(len(items) * val_share)))
    held = set(order[:n_val])
    train = [it for i, it in enumerate(items) if i not in held]
    return train, [it for i, it in enumerate(items) if i in held]


def set_trainable(model: U2Net, layers: str) -> list[torch.nn.Parameter]:
    """Freeze everything but ``layers``; the parameters left to train."""
    if layers not in LAYERS:
        raise TuneError(f"--layers must be one of {', '.join(LAYERS)}, got {layers!r}", 2)
    names = {"head": HEAD, "decoder": DECODER + HEAD, "all": None}[layers]
    params = []
    for module_name, module in model.named_children():
        train = names is None or module_name in names
        for p in module.parameters():
            p.requires_grad_(train)
            if train:
                params.append(p)
    return params


def deep_supervision_loss(logits: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """U²-Net's loss: binary cross-entropy of the fused map plus every side output."""
    return sum((F.binary_cross_entropy_with_logits(d, target) for d in logits), torch.zeros(()))


def evaluate(
    model: U2Net, samples: Sequence[Sample], device: torch.device, batch_size: int
) -> dict[str, Any]:
    """Mean IoU, boundary F1 (and the other metrics) over ``samples``, on the served mask."""
    model.eval()
    rows = []
    rng = random.Random(0)
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        x, _ = batch_arrays(chunk, rng, (), train=False)
        with torch.no_grad():
            fused = model(torch.from_numpy(x).to(device))[0].cpu().numpy()
        for i, sample in enumerate(chunk):
            pred = U2NetFamily.postprocess(fused[i : i + 1], sample.image.size)
            rows.append(metrics.evaluate(np.asarray(pred), np.asarray(sample.mask)))
    return metrics.mean_metrics(rows)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _summary(m: dict[str, Any]) -> str:
    return f"IoU {m['iou']:.4f}  boundary F1 {m['boundary_f1']:.4f}"


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }


def tune(config: TuneConfig, say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)):
    """Run the whole tune; returns the written record (a dict).

    Raises TuneError (bad arguments, no CUDA, refused result), ManifestError.
    """
    check_name(config.name)
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    items = load_manifest(config.manifest)
    if config.val is not None:
        train_items, val_items = items, load_manifest(config.val)
    else:
        train_items, val_items = split_items(items, config.val_split, config.seed)
    say(f"tune {config.name}: {len(train_items)} training, {len(val_items)} validation photos")
    train_set, val_set = load_samples(train_items), load_samples(val_items)

    spec = get_spec(config.base)
    base_path = ensure_model(config.base, config.home, progress=True)
    model = from_onnx(config.base, base_path).to(device)
    params = set_trainable(model, config.layers)
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.layers]
    optimizer = torch.optim.Adam(params, lr=lr)
    n_params = sum(p.numel() for p in params)
    say(
        f"base {config.base}, training {config.layers} ({n_params:,} weights), lr {lr:g}, "
        f"device {device}"
    )

    t0 = time.monotonic()
    base_metrics = evaluate(model, val_set, device, config.batch_size)
    val_time = time.monotonic() - t0
    say(f"base on validation: {_summary(base_metrics)}")

    rng = random.Random(config.seed)
    steps_per_epoch = max(1, -(-len(train_set) // config.batch_size))
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    best: dict[str, Any] = {"epoch": 0, "metrics": base_metrics, "state": None}
    history = []
    step, started = 0, time.monotonic()
    for epoch in range(1, config.epochs + 1):
        if step >= total:
            break
        model.train()
        order = list(train_set)
        rng.shuffle(order)
        losses = []
        for start in range(0, len(order), config.batch_size):
            if step >= total:
                break
            x, y = batch_arrays(
                order[start : start + config.batch_size], rng, train_set, train=True
            )
            optimizer.zero_grad()
            loss = deep_supervision_loss(
                model.logits(torch.from_numpy(x).to(device)), torch.from_numpy(y).to(device)
            )
            loss.backward()
            optimizer.step()
            step += 1
            losses.append(float(loss.detach()))
            per_step = (time.monotonic() - started) / step
            epochs_left = -(-(total - step) // steps_per_epoch)
            left = per_step * (total - step) + val_time * (epochs_left + 1)
            say(
                f"epoch {epoch}/{config.epochs}  step {step}/{total}  loss {losses[-1]:.4f}  "
                f"{_clock(left)} left"
            )
        epoch_metrics = evaluate(model, val_set, device, config.batch_size)
        history.append(
            {
                "epoch": epoch,
                "loss": float(np.mean(losses)),
                **{k: epoch_metrics[k] for k in ("iou", "boundary_f1", "mae")},
            }
        )
        better = epoch_metrics["iou"] > best["metrics"]["iou"]
        say(
            f"epoch {epoch}: {_summary(epoch_metrics)}  "
            f"(ΔIoU {epoch_metrics['iou'] - base_metrics['iou']:+.4f} over base)"
            + ("  best so far" if better else "")
        )
        if better or (best["state"] is None and config.allow_worse):
            best = {
                "epoch": epoch,
                "metrics": epoch_metrics,
                "state": copy.deepcopy(model.state_dict()),
            }
    train_seconds = time.monotonic() - t0

    gain = best["metrics"]["iou"] - base_metrics["iou"]
    if best["state"] is None or (gain <= 0 and not config.allow_worse):
        best_iou = max((h["iou"] for h in history), default=base_metrics["iou"])
        raise TuneError(
            f"not registered: no epoch beat {config.base} on validation (best ΔIoU "
            f"{best_iou - base_metrics['iou']:+.4f}, IoU {best_iou:.4f} vs "
            f"{base_metrics['iou']:.4f}); try more photos, more epochs or other --layers"
        )
    model.load_state_dict(best["state"])
    model = model.to("cpu").eval()
    data = export_onnx(model)
    probes = [batch_arrays(val_set[:1], rng, (), train=False)[0]]
    parity = check_parity(model, data, probes)
    say(f"exported: ONNX Runtime within {parity:.1e} of the trainer (tolerance {TOLERANCE:g})")
    record = {
        "name": config.name,
        "base": {"name": config.base, "sha256": spec.sha256},
        "sha256": sha256_of(data),
        "bytes": len(data),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "manifest": {
            "path": str(config.manifest),
            "sha256": sha256_of(config.manifest),
            "items": len(items),
            "train_items": len(train_items),
            "val_items": len(val_items),
            "val": str(config.val) if config.val else None,
        },
        "hyperparameters": {
            "layers": config.layers,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "lr": lr,
            "val_split": None if config.val else config.val_split,
            "seed": config.seed,
            "device": str(device),
            "steps": step,
            "max_steps": config.max_steps,
            "allow_worse": config.allow_worse,
        },
        "versions": versions(),
        "validation": {
            "base": {k: base_metrics[k] for k in ("iou", "boundary_f1", "mae", "n")},
            "tuned": {k: best["metrics"][k] for k in ("iou", "boundary_f1", "mae", "n")},
            "best_epoch": best["epoch"],
            "history": history,
        },
        "export": {"max_abs_diff": parity, "tolerance": TOLERANCE},
        "seconds": round(train_seconds, 1),
    }
    LocalModels(config.home).add(config.name, data, record)
    say(
        f"{config.name}: ΔIoU {gain:+.4f}, Δboundary F1 "
        f"{best['metrics']['boundary_f1'] - base_metrics['boundary_f1']:+.4f} over "
        f"{config.base} on validation; written to {LocalModels(config.home).path(config.name)}"
    )
    return record


def record_json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True)
