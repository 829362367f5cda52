"""The arguments of ``cutout tune`` and the recipe of each training run, with the defaults
a shop runs (no torch: the command line reads them without the tune extra).

The defaults were chosen on real photos with human masks (docs/tune.md, section 5):
Adam at 1e-4 on the decoder, alone, lost 0.06 IoU in the first epoch on 20 photos; the
defaults here pull toward the base (a lower rate, L2-SP, distillation, an EMA of the
weights) and validate by 4-fold cross-validation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from worker.tune.gate import Tolerance

LAYERS = ("head", "last", "decoder", "all")
#: Adam's learning rate by what is trained
DEFAULT_LR = {"head": 1e-3, "last": 1e-4, "decoder": 5e-5, "all": 1e-5}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one run trains (docs/tune.md explains each default)."""

    layers: str
    epochs: int
    batch_size: int
    lr: float
    l2sp: float
    ema: float
    distill: float
    #: probability of the background swap augmentation (worker/tune/data.py)
    swap: float = 0.0
    #: extra loss weight of pixels within a few pixels of the mask's edge (0: plain BCE)
    edge: float = 0.0
    #: the base's share of the target within a few pixels of the mask's edge (None: ``distill``)
    edge_distill: float | None = None
    #: the band's half-width, in pixels of the 320×320 map
    edge_radius: int = 3
    #: steps over which the learning rate rises linearly to ``lr`` (0: none)
    warmup: int = 0
    #: the weight of the six side outputs' terms in the loss (0: the fused map's alone)
    sides: float = 1.0
    #: stop each run after this many steps (tests, smoke runs); None: all
    max_steps: int | None = None

    def steps(self, photos: int, epochs: int | None = None) -> int:
        """The steps of a run over ``photos`` photos for ``epochs`` (default all) epochs."""
        per_epoch = max(1, -(-photos // self.batch_size))
        total = per_epoch * (self.epochs if epochs is None else epochs)
        return total if self.max_steps is None else min(total, self.max_steps)


@dataclasses.dataclass
class TuneConfig:
    manifest: Path
    base: str
    name: str
    home: Path
    #: a validation manifest; or one held-out share; neither: ``folds``-fold validation
    val: Path | None = None
    val_split: float | None = None
    folds: int = 4
    layers: str = "decoder"
    epochs: int = 3
    batch_size: int = 4
    lr: float | None = None
    #: L2-SP strength, EMA decay per step, the base's share of the target (worker/tune/regular.py)
    l2sp: float = 0.0
    ema: float = 0.9
    distill: float = 0.3
    swap: float = 0.0
    edge: float = 0.0
    edge_distill: float | None = None
    edge_radius: int = 3
    warmup: int = 0
    sides: float = 1.0
    device: str = "cpu"
    seed: int = 0
    allow_worse: bool = False
    #: how far below the base each validation measure may fall (worker/tune/gate.py)
    tolerance: Tolerance = dataclasses.field(default_factory=Tolerance)
    #: stop each run after this many training steps (tests, smoke runs); None: all
    max_steps: int | None = None
    #: torch CPU threads; None: torch's default (every core)
    threads: int | None = None

    def recipe(self) -> Recipe:
        lr = self.lr if self.lr is not None else DEFAULT_LR.get(self.layers, 0.0)
        return Recipe(
            layers=self.layers,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=lr,
            l2sp=self.l2sp,
            ema=self.ema,
            distill=self.distill,
            swap=self.swap,
            edge=self.edge,
            edge_distill=self.edge_distill,
            edge_radius=self.edge_radius,
            warmup=self.warmup,
            sides=self.sides,
            max_steps=self.max_steps,
        )
