"""``cutout tune``: fine-tune U²-Net or U²-Netp on a manifest of labelled photos.

The path: base metrics, then by default k-fold cross-validation inside the manifest
(:func:`worker.tune.gate.folds`): a run per fold (:func:`worker.tune.fit.fit`, epochs of
augmented training with deep supervision, pulled toward the base by L2-SP, distillation
and an EMA of the weights), each photo validated once by the fold that never trained on
it, after every epoch (IoU and boundary F1 of :mod:`worker.eval.metrics` on the mask the
engine would serve). The gate (:mod:`worker.tune.gate`) takes the epoch count that beats
the base on the pooled validation in both measures by the most; none: nothing is trained
further or registered (unless ``allow_worse``). A last run then trains on every photo for
that many epochs. With ``val`` (a validation manifest) or ``val_split`` (one seeded
held-out share) there is one run, validated on those photos, its best epoch kept. The
model is exported with the base's exact I/O, checked against ONNX Runtime, and written
with its record into the model home (:mod:`worker.engine.custom`).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from shared.onnx.modelfile import check_name
from worker.engine.custom import LocalModels
from worker.engine.models import ensure_model
from worker.eval.manifest import Item, load_manifest
from worker.tune import fit as fitting
from worker.tune import gate
from worker.tune.config import DEFAULT_LR, LAYERS, TuneConfig
from worker.tune.data import load_samples
from worker.tune.export import TOLERANCE, check_parity, export_onnx
from worker.tune.fit import FitError, Progress
from worker.tune.net import U2Net, from_onnx
from worker.tune.record import build_record
from worker.tune.run import Run
from worker.tune.select import CrossRuns, Selection, SingleRun, refusal

__all__ = ["DEFAULT_LR", "LAYERS", "TuneConfig", "TuneError", "pick_device", "split_items", "tune"]


class TuneError(Exception):
    """The tune cannot run or its result is refused; ``exit_code`` for the command line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


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


def tune(config: TuneConfig, say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)):
    """Run the whole tune; returns the written record (a dict).

    Raises TuneError (bad arguments, no CUDA, a result the gate refuses: its exit code
    says which measure fell, worker/tune/gate.py), ManifestError.
    """
    run = _prepare(config, say)
    t0 = time.monotonic()
    if config.val is not None or config.val_split is not None:
        selection: Selection = _single(run)
    else:
        selection = _cross(run)
    verdict = selection.verdict()
    if not verdict.passed and not config.allow_worse:
        raise TuneError(refusal(selection, config.base), verdict.exit_code)
    state, steps = selection.final(run)
    run.base.load_state_dict(state)
    model = run.base.to("cpu").eval()
    data = export_onnx(model)
    probe = fitting.batch_arrays(selection.probe(), random.Random(0), (), train=False)[0]
    parity = check_parity(model, data, [probe])
    say(f"exported: ONNX Runtime within {parity:.1e} of the trainer (tolerance {TOLERANCE:g})")
    record = build_record(run, selection, verdict, data, parity, steps, time.monotonic() - t0)
    LocalModels(config.home).add(config.name, data, record)
    say(
        f"{config.name}: {verdict.deltas()} over {config.base} on validation; written to "
        f"{LocalModels(config.home).path(config.name)}"
    )
    return record


def _prepare(config: TuneConfig, say: Callable[[str], None]) -> Run:
    """Check the arguments, seed, load the photos, build the network."""
    check_name(config.name)
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    recipe = config.recipe()
    items = load_manifest(config.manifest)
    if len(items) < 2:
        raise TuneError("the manifest needs at least 2 items to hold some out for validation", 2)
    base_path = ensure_model(config.base, config.home, progress=True)
    base = from_onnx(config.base, base_path).to(device)
    try:
        n_params = sum(p.numel() for p in fitting.set_trainable(base, recipe.layers))
    except FitError as exc:
        raise TuneError(str(exc), 2) from exc
    say(
        f"base {config.base}, training {recipe.layers} ({n_params:,} weights), lr {recipe.lr:g}, "
        f"L2-SP {recipe.l2sp:g}, EMA {recipe.ema:g}, distillation {recipe.distill:g}, "
        f"device {device}"
    )
    return Run(config, recipe, device, items, base, say)


def _single(run: Run) -> SingleRun:
    """One run on the manifest (or its training share), validated on ``val``."""
    config = run.config
    if config.val is not None:
        train_items, val_items = run.items, load_manifest(config.val)
    else:
        assert config.val_split is not None
        train_items, val_items = split_items(run.items, config.val_split, config.seed)
    run.say(f"tune {config.name}: {len(train_items)} training, {len(val_items)} validation photos")
    train_set, val_set = load_samples(train_items), load_samples(val_items)
    selection = SingleRun(
        base=fitting.evaluate(run.base, val_set, run.device, config.batch_size),
        tolerance=config.tolerance,
        allow_worse=config.allow_worse,
        train_items=len(train_items),
        val_set=val_set,
    )
    run.say(f"base on validation: {_summary(selection.base)}")
    progress = Progress(run.recipe.steps(len(train_set)), run.say)

    def validate(model: U2Net, epoch: int) -> bool:
        now = fitting.evaluate(model, val_set, run.device, config.batch_size)
        return selection.add(epoch, now, run.say)

    selection.fitted = fitting.fit(
        run.base, train_set, run.recipe, device=run.device, seed=config.seed,
        progress=progress, label="train", validate=validate,
    )  # fmt: skip
    return selection


def _cross(run: Run) -> CrossRuns:
    """k-fold validation inside the manifest: a run per fold, validated after each epoch."""
    config = run.config
    samples = load_samples(run.items)
    try:
        folds = gate.folds(len(samples), config.folds, config.seed)
    except ValueError as exc:
        raise TuneError(f"--folds: {exc}", 2) from exc
    run.say(
        f"tune {config.name}: {len(samples)} photos, {len(folds)}-fold cross-validation "
        f"(each photo validated by a run that did not train on it), then a run on all"
    )
    total = sum(run.recipe.steps(len(samples) - len(f)) for f in folds)
    progress = run.progress = Progress(total + run.recipe.steps(len(samples)), run.say)
    selection = CrossRuns(
        tolerance=config.tolerance, allow_worse=config.allow_worse, samples=samples
    )
    for index, fold in enumerate(folds, start=1):
        held = set(fold)
        train_set = [s for i, s in enumerate(samples) if i not in held]
        val_set = [samples[i] for i in fold]
        results: list[dict[str, Any]] = []
        base = fitting.evaluate(run.base, val_set, run.device, config.batch_size)

        def validate(model: U2Net, _epoch: int, held: list = val_set, out: list = results) -> bool:
            out.append(fitting.evaluate(model, held, run.device, config.batch_size))
            return False

        fitting.fit(
            run.base, train_set, run.recipe, device=run.device, seed=config.seed + index,
            progress=progress, label=f"fold {index}/{len(folds)}", validate=validate,
        )  # fmt: skip
        selection.add_fold(base, results, run.say)
    selection.pool(run.say)
    return selection


def _summary(m: dict[str, Any]) -> str:
    return f"IoU {m['iou']:.4f}  boundary F1 {m['boundary_f1']:.4f}"
