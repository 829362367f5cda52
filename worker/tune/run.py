"""What one tune holds while it runs (:class:`Run`): its arguments, photos, base network
and device. Its own module so that the trainer (:mod:`worker.tune.train`), the selection
(:mod:`worker.tune.select`) and the record (:mod:`worker.tune.record`) all name it
without importing each other. Needs no torch at import: the types are for the checker."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from worker.eval.manifest import Item
    from worker.tune.config import Recipe, TuneConfig
    from worker.tune.fit import Progress
    from worker.tune.net import U2Net


@dataclasses.dataclass
class Run:
    """What one tune holds: its arguments, photos, base network and device."""

    config: TuneConfig
    recipe: Recipe
    device: torch.device
    items: list[Item]
    base: U2Net
    say: Callable[[str], None]
    #: the steps of every run of the tune, for the time left
    progress: Progress | None = None
