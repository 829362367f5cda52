"""What keeps a tune on a few photos near its base (worker/tune/regular.py), and the
augmentation's repeatability (worker/tune/data.py). Tiny tensors: well under a second.

Needs the tune extra (torch); CI installs it (.ci/run).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from worker.tune.regular import Anchor, Ema, distilled  # noqa: E402


def _params(*values: float) -> list[Any]:
    return [torch.nn.Parameter(torch.tensor(list(values)))]


def test_l2sp_is_zero_at_the_base_and_grows_away_from_it() -> None:
    params = _params(1.0, -2.0, 0.5)
    anchor = Anchor(params, alpha=0.1)
    assert float(anchor.penalty().detach()) == 0.0
    steps = []
    for shift in (0.1, 0.2, 0.4):
        with torch.no_grad():
            params[0].copy_(torch.tensor([1.0, -2.0, 0.5]) + shift)
        steps.append(float(anchor.penalty().detach()))
    # α·Σ(w−w₀)²: 3 weights each shifted by s
    assert steps == pytest.approx([0.1 * 3 * s * s for s in (0.1, 0.2, 0.4)])
    # its gradient points back to the base weights, not to zero (that would be weight decay)
    params[0].grad = None
    anchor.penalty().backward()
    assert params[0].grad is not None
    assert torch.all(params[0].grad > 0)  # w above w₀: descending moves it down to w₀
    assert float(Anchor(params, alpha=0.0).penalty().detach()) == 0.0


def test_ema_starts_at_the_base_and_follows_slowly() -> None:
    params = _params(0.0)
    ema = Ema(params, decay=0.5)
    with torch.no_grad():
        params[0].fill_(1.0)
    ema.update()  # 0.5·0 + 0.5·1
    ema.update()  # 0.5·0.5 + 0.5·1
    with ema.applied():
        assert float(params[0].detach()) == pytest.approx(0.75)
    assert float(params[0].detach()) == 1.0  # the trained weights come back after the block
    latest = Ema(params, decay=0.0)
    with torch.no_grad():
        params[0].fill_(3.0)
    latest.update()
    with latest.applied():
        assert float(params[0].detach()) == 3.0
    with pytest.raises(ValueError, match="decay"):
        Ema(params, decay=1.0)


def test_distillation_blends_the_mask_with_the_base_map() -> None:
    mask, teacher = torch.ones(2), torch.zeros(2)
    assert torch.equal(distilled(mask, teacher, 0.0), mask)
    assert torch.allclose(distilled(mask, teacher, 0.3), torch.full((2,), 0.7))
    with pytest.raises(ValueError, match="distillation"):
        distilled(mask, teacher, 1.5)


def _sample(seed: int):  # type: ignore[no-untyped-def]
    from PIL import Image

    from worker.tune.data import Sample

    rng = np.random.default_rng(seed)
    photo = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    mask = np.zeros((24, 32), dtype=np.uint8)
    mask[6:18, 8:24] = 255
    return Sample(photo, Image.fromarray(mask), hard=True)


def test_augmentation_is_the_same_for_the_same_seed() -> None:
    from worker.tune.data import augment

    samples = [_sample(1), _sample(2)]

    def pairs(seed: int, swap: float) -> list[tuple[bytes, bytes]]:
        rng = random.Random(seed)
        out = []
        for _ in range(6):
            image, mask = augment(samples[0], rng, samples, swap)
            out.append((image.tobytes(), mask.tobytes()))
        return out

    assert pairs(7, 0.5) == pairs(7, 0.5)
    assert pairs(7, 0.5) != pairs(8, 0.5)
    # the augmentation changes something (flip, crop, colour), the mask follows the photo
    first = pairs(3, 0.0)
    assert any(image != samples[0].image.tobytes() for image, _ in first)


def test_edge_band_weights_pixels_near_the_mask_edge_only() -> None:
    from worker.tune.fit import deep_supervision_loss, edge_weights

    mask = torch.zeros(1, 1, 20, 20)
    mask[..., 5:15, 5:15] = 1.0
    weights = edge_weights(mask, 2.0, radius=1)
    # the edge between rows 4 and 5: the pixel either side of it is in the band
    assert float(weights[0, 0, 10, 10]) == 1.0  # deep inside
    assert float(weights[0, 0, 0, 0]) == 1.0  # far outside
    assert [float(weights[0, 0, row, 10]) for row in (3, 4, 5, 6)] == [1.0, 3.0, 3.0, 1.0]
    # a weighted loss is normalised: equal per-pixel errors give the unweighted loss
    logits = [torch.zeros(1, 1, 20, 20)]
    half = torch.full((1, 1, 20, 20), 0.5)
    plain = deep_supervision_loss(logits, half)
    assert torch.allclose(deep_supervision_loss(logits, half, weights), plain)
    # and an error on the edge costs more than the same error inside
    wrong_edge, wrong_inside = mask.clone(), mask.clone()
    wrong_edge[..., 5, 10] = 0.0
    wrong_inside[..., 10, 10] = 0.0
    sure = [mask * 20 - 10]
    assert deep_supervision_loss(sure, wrong_edge, weights) > deep_supervision_loss(
        sure, wrong_inside, weights
    )


def test_distillation_takes_a_weight_per_pixel() -> None:
    mask, teacher = torch.ones(3), torch.zeros(3)
    share = torch.tensor([0.0, 0.3, 1.0])
    assert torch.allclose(distilled(mask, teacher, share), torch.tensor([1.0, 0.7, 0.0]))
    with pytest.raises(ValueError, match="distillation"):
        distilled(mask, teacher, torch.tensor([0.5, 1.5, 0.0]))


def test_cli_takes_edge_distill_and_refuses_it_out_of_range(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from cutout.cli import build_parser, main

    base = ["tune", "--manifest", str(tmp_path / "m.csv"), "--base", "u2netp", "--name", "n"]
    args = build_parser().parse_args([*base, "--edge-distill", "1", "--layers", "last"])
    assert (args.edge_distill, args.layers) == (1.0, "last")
    assert build_parser().parse_args(base).edge_distill is None  # default: as --distill
    assert main([*base, "--edge-distill", "1.5"]) == 2
    assert "--edge-distill must be in [0, 1]" in capsys.readouterr().err
