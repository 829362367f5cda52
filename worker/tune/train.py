"""``cutout tune``: fine-tune U²-Net or U²-Netp on a manifest of labelled photos.

The path: split (``--val`` or a seeded ``--val-split``), base metrics on validation,
epochs of augmented training with deep supervision (the paper's loss: BCE summed over the
fused map and all six side outputs), validation after each epoch (IoU and boundary F1 of
:mod:`worker.eval.metrics`, on the mask the engine would serve: the fused output min-max
normalised and resized to the photo), the best epoch the gate passes kept. The gate
(:mod:`worker.tune.gate`): better than the base on validation on mean IoU or mean
boundary F1, and worse on neither beyond its tolerance; a model it refuses is not
registered unless ``allow_worse``. The kept model is
exported with the base's exact I/O, checked against ONNX Runtime, and written with its
record into the model home (:mod:`worker.engine.custom`).
"""

from __future__ import annotations

import copy
import dataclasses
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from shared.modelfile import check_name
from worker.engine.custom import LocalModels
from worker.engine.families import U2NetFamily
from worker.engine.models import ensure_model
from worker.eval import metrics
from worker.eval.manifest import Item, load_manifest
from worker.tune import gate
from worker.tune.data import Sample, batch_arrays, load_samples
from worker.tune.export import TOLERANCE, check_parity, export_onnx
from worker.tune.gate import Tolerance, Verdict
from worker.tune.net import DECODER, HEAD, U2Net, from_onnx
from worker.tune.record import build_record

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
    #: how far below the base each validation measure may fall (worker/tune/gate.py)
    tolerance: Tolerance = dataclasses.field(default_factory=Tolerance)
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


@dataclasses.dataclass
class Run:
    """What one tune holds while it trains: its data, network and optimiser."""

    config: TuneConfig
    device: torch.device
    items: list[Item]
    train_items: list[Item]
    val_items: list[Item]
    train_set: list[Sample]
    val_set: list[Sample]
    model: U2Net
    optimizer: torch.optim.Optimizer
    lr: float
    rng: random.Random
    steps: int = 0


@dataclasses.dataclass
class Epochs:
    """Validation after each epoch, and the state of the epoch kept (the gate's best,
    or with ``allow_worse`` and none passing, the best by IoU)."""

    base: dict[str, Any]
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    kept: int | None = None  # index into history
    state: dict[str, Any] | None = None
    seconds: float = 0.0


def tune(config: TuneConfig, say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)):
    """Run the whole tune; returns the written record (a dict).

    Raises TuneError (bad arguments, no CUDA, a result the gate refuses: its exit code
    says which measure fell, worker/tune/gate.py), ManifestError.
    """
    run = _prepare(config, say)
    t0 = time.monotonic()
    epochs = Epochs(base=evaluate(run.model, run.val_set, run.device, config.batch_size))
    val_time = time.monotonic() - t0
    say(f"base on validation: {_summary(epochs.base)}")
    _train_epochs(run, epochs, val_time, say)
    epochs.seconds = time.monotonic() - t0
    verdict = _gate(run, epochs)
    assert epochs.state is not None
    assert epochs.kept is not None
    run.model.load_state_dict(epochs.state)
    model = run.model.to("cpu").eval()
    data = export_onnx(model)
    probes = [batch_arrays(run.val_set[:1], run.rng, (), train=False)[0]]
    parity = check_parity(model, data, probes)
    say(f"exported: ONNX Runtime within {parity:.1e} of the trainer (tolerance {TOLERANCE:g})")
    record = build_record(run, epochs, verdict, data, parity)
    LocalModels(config.home).add(config.name, data, record)
    say(
        f"{config.name}: {verdict.deltas()} over {config.base} on validation; written to "
        f"{LocalModels(config.home).path(config.name)}"
    )
    return record


def _prepare(config: TuneConfig, say: Callable[[str], None]) -> Run:
    """Check the arguments, seed, split and load the photos, build the network."""
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
    base_path = ensure_model(config.base, config.home, progress=True)
    model = from_onnx(config.base, base_path).to(device)
    params = set_trainable(model, config.layers)
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.layers]
    n_params = sum(p.numel() for p in params)
    say(
        f"base {config.base}, training {config.layers} ({n_params:,} weights), lr {lr:g}, "
        f"device {device}"
    )
    return Run(
        config=config,
        device=device,
        items=items,
        train_items=train_items,
        val_items=val_items,
        train_set=train_set,
        val_set=val_set,
        model=model,
        optimizer=torch.optim.Adam(params, lr=lr),
        lr=lr,
        rng=random.Random(config.seed),
    )


def _train_epochs(run: Run, epochs: Epochs, val_time: float, say: Callable[[str], None]) -> None:
    """Train epoch by epoch (at most ``max_steps`` steps), validating after each."""
    config = run.config
    steps_per_epoch = max(1, -(-len(run.train_set) // config.batch_size))
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    started = time.monotonic()
    for epoch in range(1, config.epochs + 1):
        if run.steps >= total:
            break
        run.model.train()
        order = list(run.train_set)
        run.rng.shuffle(order)
        losses = []
        for start in range(0, len(order), config.batch_size):
            if run.steps >= total:
                break
            losses.append(_step(run, order[start : start + config.batch_size]))
            per_step = (time.monotonic() - started) / run.steps
            epochs_left = -(-(total - run.steps) // steps_per_epoch)
            left = per_step * (total - run.steps) + val_time * (epochs_left + 1)
            say(
                f"epoch {epoch}/{config.epochs}  step {run.steps}/{total}  "
                f"loss {losses[-1]:.4f}  {_clock(left)} left"
            )
        metrics_now = evaluate(run.model, run.val_set, run.device, config.batch_size)
        _validated(run, epochs, epoch, float(np.mean(losses)), metrics_now, say)


def _step(run: Run, batch: Sequence[Sample]) -> float:
    """One optimisation step on ``batch``; its loss."""
    x, y = batch_arrays(batch, run.rng, run.train_set, train=True)
    run.optimizer.zero_grad()
    loss = deep_supervision_loss(
        run.model.logits(torch.from_numpy(x).to(run.device)), torch.from_numpy(y).to(run.device)
    )
    loss.backward()
    run.optimizer.step()
    run.steps += 1
    return float(loss.detach())


def _validated(
    run: Run,
    epochs: Epochs,
    epoch: int,
    loss: float,
    metrics_now: dict[str, Any],
    say: Callable[[str], None],
) -> None:
    """Record an epoch's validation and keep its state if the gate makes it the best."""
    epochs.history.append(
        {"epoch": epoch, "loss": loss, **{k: metrics_now[k] for k in ("iou", "boundary_f1", "mae")}}
    )
    epochs.metrics.append(metrics_now)
    tolerance = run.config.tolerance
    verdict = Verdict(epochs.base, metrics_now, tolerance)
    best = gate.pick_best(epochs.base, epochs.metrics, tolerance)
    if best is None and run.config.allow_worse:
        best = gate.closest(epochs.metrics)
    note = ""
    if verdict.worse:
        note = f"  refused by the gate: {verdict.failures()}"
    if best == len(epochs.metrics) - 1:
        epochs.kept, epochs.state = best, copy.deepcopy(run.model.state_dict())
        note += "  best so far"
    say(f"epoch {epoch}: {_summary(metrics_now)}  ({verdict.deltas()} over base){note}")


def _gate(run: Run, epochs: Epochs) -> Verdict:
    """The kept epoch's verdict; raises TuneError when the gate passes no epoch (unless
    ``allow_worse``), naming the measure that fell and by how much."""
    config = run.config
    if epochs.kept is not None:
        return Verdict(epochs.base, epochs.metrics[epochs.kept], config.tolerance)
    nearest = gate.closest(epochs.metrics) if epochs.metrics else None
    verdict = Verdict(
        epochs.base, epochs.base if nearest is None else epochs.metrics[nearest], config.tolerance
    )
    if nearest is not None and verdict.worse:
        raise TuneError(
            f"not registered: the best epoch on validation IoU (epoch "
            f"{epochs.history[nearest]['epoch']}) is worse than {config.base}: "
            f"{verdict.failures()} ({verdict.deltas()}); no epoch was better without "
            "falling beyond a tolerance (--tolerance-iou, --tolerance-bf1); try more "
            "photos, more epochs or other --layers",
            verdict.exit_code,
        )
    best_iou = verdict.tuned["iou"]
    raise TuneError(
        f"not registered: no epoch beat {config.base} on validation (best ΔIoU "
        f"{best_iou - epochs.base['iou']:+.4f}, IoU {best_iou:.4f} vs "
        f"{epochs.base['iou']:.4f}); try more photos, more epochs or other --layers",
        gate.EXIT_NOT_BETTER,
    )
