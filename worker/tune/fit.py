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

#: pixels (of the 320×320 map) either side of the mask's edge that ``edge`` weights
EDGE_RADIUS = 3


class FitError(ValueError):
    """A recipe that cannot train (bad layers, rates out of range)."""


def set_trainable(model: U2Net, layers: str) -> list[torch.nn.Parameter]:
    """Freeze everything but ``layers``; the parameters left to train."""
    if layers not in LAYERS:
        raise FitError(f"--layers must be one of {', '.join(LAYERS)}, got {layers!r}")
    names = {"head": HEAD, "last": ("stage1d", *HEAD), "decoder": DECODER + HEAD, "all": None}[
        layers
    ]
    params = []
    for module_name, module in model.named_children():
        train = names is None or module_name in names
        for p in module.parameters():
            p.requires_grad_(train)
            if train:
                params.append(p)
    return params


def edge_weights(mask: torch.Tensor, edge: float, radius: int = EDGE_RADIUS) -> torch.Tensor:
    """Per-pixel loss weights: ``1 + edge`` within ``radius`` pixels of the mask's edge
    (where the binarised mask's dilation and erosion differ), 1 elsewhere."""
    binary = (mask > 0.5).to(mask.dtype)
    size = 2 * radius + 1
    dilated = F.max_pool2d(binary, size, stride=1, padding=radius)
    eroded = -F.max_pool2d(-binary, size, stride=1, padding=radius)
    return 1 + edge * (dilated - eroded)


def deep_supervision_loss(
    logits: Sequence[torch.Tensor], target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """U²-Net's loss: binary cross-entropy of the fused map plus every side output;
    with ``weights``, each pixel's term weighted (normalised to the weights' mean)."""
    if weights is None:
        terms = (F.binary_cross_entropy_with_logits(d, target) for d in logits)
    else:
        scale = weights.mean()
        terms = (
            F.binary_cross_entropy_with_logits(d, target, weight=weights) / scale for d in logits
        )
    return sum(terms, torch.zeros(()))


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


def _targets(
    parts: _Parts, recipe: Recipe, inputs: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The training target (the mask, blended with the base's map: ``distill``, and
    ``edge_distill`` within the edge band) and the per-pixel loss weights (``edge``)."""
    band = None
    if recipe.edge or recipe.edge_distill is not None:
        band = edge_weights(mask, 1.0, recipe.edge_radius) - 1
    weights = 1 + recipe.edge * band if recipe.edge and band is not None else None
    if parts.teacher is None:
        return mask, weights
    share: float | torch.Tensor = recipe.distill
    if recipe.edge_distill is not None and band is not None:
        share = recipe.distill + (recipe.edge_distill - recipe.distill) * band
    with torch.no_grad():
        return distilled(mask, parts.teacher(inputs)[0], share), weights


def _step(
    parts: _Parts, recipe: Recipe, batch: tuple[np.ndarray, np.ndarray], done: int, device
) -> float:
    inputs, mask = (torch.from_numpy(a).to(device) for a in batch)
    target, weights = _targets(parts, recipe, inputs, mask)
    logits = parts.model.logits(inputs)
    if recipe.sides == 1:
        loss = deep_supervision_loss(logits, target, weights)
    else:  # the fused map, and the side outputs at their own weight
        loss = deep_supervision_loss(logits[:1], target, weights)
        loss = loss + recipe.sides * deep_supervision_loss(logits[1:], target, weights)
    if recipe.warmup:
        for group in parts.optimizer.param_groups:
            group["lr"] = recipe.lr * min(1.0, (done + 1) / recipe.warmup)
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
        teacher=base.to(device).eval() if recipe.distill or recipe.edge_distill else None,
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
            arrays = batch_arrays(batch, rng, train_set, train=True, swap=recipe.swap)
            losses.append(_step(parts, recipe, arrays, out.steps, device))
            out.steps += 1
            progress.step(f"{label}  epoch {epoch}/{n_epochs}", losses[-1])
        out.losses.append(float(np.mean(losses)))
        with parts.ema.applied():
            keep = validate(model, epoch) if validate is not None else True
            if keep:
                out.state = copy.deepcopy(model.state_dict())
    return out
