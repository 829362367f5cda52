"""One training run of ``cutout tune``: a copy of the base trained on some photos, with the
regularisers of :mod:`worker.tune.regular`, validated after each epoch (needs torch).

Cross-validation runs this once per fold and once more on every photo; ``--val`` runs it
once. The weights validated, kept and exported are the EMA's.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from worker.engine.families import U2NetFamily
from worker.eval import metrics
from worker.tune.config import LAYERS, Recipe
from worker.tune.data import Sample, batch_arrays
from worker.tune.net import DECODER, HEAD, U2Net
from worker.tune.regular import Anchor, Ema, distilled


class FitError(ValueError):
    """A recipe that cannot train (bad layers, rates out of range)."""


def set_trainable(model: U2Net, layers: str) -> list[torch.nn.Parameter]:
    """Freeze everything but ``layers``; the parameters left to train."""
    if layers not in LAYERS:
        raise FitError(f"--layers must be one of {', '.join(LAYERS)}, got {layers!r}")
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


@dataclasses.dataclass
class Progress:
    """Steps done of all the runs of a tune, and the time left, said after every step."""

    total: int
    say: Callable[[str], None]
    done: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)

    def step(self, where: str, loss: float) -> None:
        self.done += 1
        per_step = (time.monotonic() - self.started) / self.done
        left = per_step * max(0, self.total - self.done)
        self.say(f"{where}  step {self.done}/{self.total}  loss {loss:.4f}  {_clock(left)} left")


@dataclasses.dataclass
class Fitted:
    """A run's outcome: validation after each epoch, the weights kept, the steps taken."""

    epochs: list[dict[str, Any]]
    losses: list[float]
    state: dict[str, Any] | None
    steps: int


@dataclasses.dataclass
class _Parts:
    model: U2Net
    teacher: U2Net | None
    anchor: Anchor
    ema: Ema
    optimizer: torch.optim.Optimizer


def _step(parts: _Parts, recipe: Recipe, x: np.ndarray, y: np.ndarray, device: torch.device):
    inputs, target = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    if parts.teacher is not None:
        with torch.no_grad():
            target = distilled(target, parts.teacher(inputs)[0], recipe.distill)
    loss = deep_supervision_loss(parts.model.logits(inputs), target)
    parts.optimizer.zero_grad()
    (loss + parts.anchor.penalty()).backward()
    parts.optimizer.step()
    parts.ema.update()
    return float(loss.detach())


def fit(
    base: U2Net,
    train_set: Sequence[Sample],
    recipe: Recipe,
    *,
    device: torch.device,
    seed: int,
    progress: Progress,
    label: str,
    validate: Callable[[U2Net, int], bool] | None = None,
    epochs: int | None = None,
) -> Fitted:
    """Train a copy of ``base`` on ``train_set`` for ``epochs`` (default the recipe's).

    After each epoch ``validate(model, epoch)`` (the EMA's weights in place) returns
    whether to keep this epoch's weights; without it the last epoch's are kept.
    """
    model = copy.deepcopy(base).to(device)
    params = set_trainable(model, recipe.layers)
    parts = _Parts(
        model=model,
        teacher=base.to(device).eval() if recipe.distill else None,
        anchor=Anchor(params, recipe.l2sp),
        ema=Ema(params, recipe.ema),
        optimizer=torch.optim.Adam(params, lr=recipe.lr),
    )
    rng = random.Random(seed)
    n_epochs = recipe.epochs if epochs is None else epochs
    total = recipe.steps(len(train_set), n_epochs)
    out = Fitted(epochs=[], losses=[], state=None, steps=0)
    for epoch in range(1, n_epochs + 1):
        if out.steps >= total:
            break
        model.train()
        order = list(train_set)
        rng.shuffle(order)
        losses = []
        for start in range(0, len(order), recipe.batch_size):
            if out.steps >= total:
                break
            batch = order[start : start + recipe.batch_size]
            x, y = batch_arrays(batch, rng, train_set, train=True, swap=recipe.swap)
            losses.append(_step(parts, recipe, x, y, device))
            out.steps += 1
            progress.step(f"{label}  epoch {epoch}/{n_epochs}", losses[-1])
        out.losses.append(float(np.mean(losses)))
        with parts.ema.applied():
            keep = validate(model, epoch) if validate is not None else True
            if keep:
                out.state = copy.deepcopy(model.state_dict())
    return out
