"""What keeps a tune on a few dozen photos close to its base (needs torch).

A base model is already good on most photos; twenty photos are too few to learn a new
function, only to correct the old one a little. Measured on real horse photos
(docs/tune.md, section 5): the old defaults (Adam at 1e-4 on the decoder, nothing else)
lost 0.06 IoU in the first epoch. Each piece here pulls the other way:

- :class:`Anchor`, L2-SP (Li, Grandvalet & Davoine, 2018): ``α · Σ‖w − w₀‖²`` over the
  trained weights, w₀ the base's. Plain weight decay pulls toward zero, which for a
  pretrained network means away from what it knows; this pulls toward the base.
- :class:`Ema`: an exponential moving average of the trained weights, started at the
  base's. The average is what is validated and exported: it lags the noisy steps of a
  tiny batch and stays between the base and the latest weights.
- :func:`distilled`: the target is a blend of the human mask and the base's own map on
  the same augmented input, so the tune corrects where the mask says the base is wrong
  and keeps the base's answer (and its soft edges) where they agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch


class Anchor:
    """L2-SP: the squared distance of ``params`` from their values when it was made."""

    def __init__(self, params: Sequence[torch.nn.Parameter], alpha: float) -> None:
        self.params = list(params)
        self.alpha = alpha
        self.start = [p.detach().clone() for p in self.params]

    def penalty(self) -> torch.Tensor:
        """``alpha · Σ‖w − w₀‖²`` (a scalar tensor with a gradient); 0 at the start."""
        if not self.alpha:
            return torch.zeros(())
        total = sum(
            (((p - p0) ** 2).sum() for p, p0 in zip(self.params, self.start, strict=True)),
            torch.zeros(()),
        )
        return self.alpha * total


class Ema:
    """The exponential moving average of ``params`` (decay per step), started at their
    current values; ``decay`` 0 keeps the latest weights (no averaging)."""

    def __init__(self, params: Sequence[torch.nn.Parameter], decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.params = list(params)
        self.decay = decay
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights in: ``shadow ← decay · shadow + (1 − decay) · w``."""
        for p, s in zip(self.params, self.shadow, strict=True):
            s.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the parameters hold the average; afterwards their own values."""
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, s in zip(self.params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(self.params, saved, strict=True):
                    p.copy_(v)


def distilled(
    target: torch.Tensor, teacher: torch.Tensor, weight: float | torch.Tensor
) -> torch.Tensor:
    """``(1 − weight) · target + weight · teacher``: the mask blended with the base's map
    (``weight`` a number, or a tensor of one weight per pixel)."""
    if isinstance(weight, torch.Tensor):
        if weight.min() < 0 or weight.max() > 1:
            raise ValueError("distillation weights must be in [0, 1]")
    elif not 0 <= weight <= 1:
        raise ValueError(f"distillation weight must be in [0, 1], got {weight}")
    elif not weight:
        return target
    return (1 - weight) * target + weight * teacher
