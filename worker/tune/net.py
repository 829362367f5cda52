"""U²-Net and U²-Netp in PyTorch, with the weights read from the pinned ONNX files.

The architecture is the published one (Qin et al., 2020; RSU-7..RSU-4F blocks, six side
outputs and a fused output, each through a sigmoid). The pinned ONNX files have batch
norm folded into the convolutions, so every block here is convolution + bias + ReLU: the
same function as the original in eval mode, and what fine-tuning trains.

Weights are mapped by order: the ONNX graph lists its Conv nodes in the order the exporter
traced the forward pass; :func:`load_onnx_weights` runs this forward once with hooks to get
its own convolution order and copies each initializer into the convolution of the same
rank, checking every shape. The torch outputs match ONNX Runtime's within 5e-4 (1.4e-4
seen on a photo; checked by ``tests/unit/test_tune_net.py`` and on every export).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)
from torch import nn

#: (stage name, block kind, in, mid, out) for each variant
_STAGES = {
    "u2net": (
        ("stage1", 7, 3, 32, 64),
        ("stage2", 6, 64, 32, 128),
        ("stage3", 5, 128, 64, 256),
        ("stage4", 4, 256, 128, 512),
        ("stage5", 0, 512, 256, 512),
        ("stage6", 0, 512, 256, 512),
        ("stage5d", 0, 1024, 256, 512),
        ("stage4d", 4, 1024, 128, 256),
        ("stage3d", 5, 512, 64, 128),
        ("stage2d", 6, 256, 32, 64),
        ("stage1d", 7, 128, 16, 64),
    ),
    "u2netp": (
        ("stage1", 7, 3, 16, 64),
        ("stage2", 6, 64, 16, 64),
        ("stage3", 5, 64, 16, 64),
        ("stage4", 4, 64, 16, 64),
        ("stage5", 0, 64, 16, 64),
        ("stage6", 0, 64, 16, 64),
        ("stage5d", 0, 128, 16, 64),
        ("stage4d", 4, 128, 16, 64),
        ("stage3d", 5, 128, 16, 64),
        ("stage2d", 6, 128, 16, 64),
        ("stage1d", 7, 128, 16, 64),
    ),
}
#: side-output input channels (side1..side6)
_SIDES = {"u2net": (64, 64, 128, 256, 512, 512), "u2netp": (64, 64, 64, 64, 64, 64)}
ENCODER = ("stage1", "stage2", "stage3", "stage4", "stage5", "stage6")
DECODER = ("stage5d", "stage4d", "stage3d", "stage2d", "stage1d")
HEAD = ("side1", "side2", "side3", "side4", "side5", "side6", "outconv")


class ConvReLU(nn.Module):
    """REBNCONV with its batch norm folded in: 3×3 dilated convolution, bias, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, dirate: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=dirate, dilation=dirate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


def upsample_like(src: torch.Tensor, tar: torch.Tensor) -> torch.Tensor:
    # the ONNX files: Resize linear, pytorch_half_pixel == align_corners=False
    return F.interpolate(src, size=tar.shape[2:], mode="bilinear", align_corners=False)


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, stride=2, ceil_mode=True)


class RSU(nn.Module):
    """Residual U-block of height ``height`` (7..4): pooling encoder, dilated bottom,
    upsampling decoder, plus the input convolution as residual."""

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.height = height
        self.convin = ConvReLU(in_ch, out_ch)
        self.enc = nn.ModuleList(
            [ConvReLU(out_ch if i == 0 else mid_ch, mid_ch) for i in range(height - 1)]
        )
        self.bottom = ConvReLU(mid_ch, mid_ch, dirate=2)
        self.dec = nn.ModuleList(
            [ConvReLU(mid_ch * 2, out_ch if i == height - 2 else mid_ch) for i in range(height - 1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.convin(x)
        skips = []
        hx = hxin
        for i, conv in enumerate(self.enc):
            hx = conv(hx if i == 0 else _pool(hx))
            skips.append(hx)
        hx = self.bottom(hx)
        for i, conv in enumerate(self.dec):
            skip = skips[-1 - i]
            if i > 0:
                hx = upsample_like(hx, skip)
            hx = conv(torch.cat((hx, skip), 1))
        return hx + hxin


class RSU4F(nn.Module):
    """The dilated RSU without pooling (dilations 1, 2, 4, 8 and back)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.convin = ConvReLU(in_ch, out_ch)
        self.enc = nn.ModuleList(
            [ConvReLU(out_ch, mid_ch, 1), ConvReLU(mid_ch, mid_ch, 2), ConvReLU(mid_ch, mid_ch, 4)]
        )
        self.bottom = ConvReLU(mid_ch, mid_ch, dirate=8)
        self.dec = nn.ModuleList(
            [
                ConvReLU(mid_ch * 2, mid_ch, 4),
                ConvReLU(mid_ch * 2, mid_ch, 2),
                ConvReLU(mid_ch * 2, out_ch, 1),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.convin(x)
        skips = []
        hx = hxin
        for conv in self.enc:
            hx = conv(hx)
            skips.append(hx)
        hx = self.bottom(hx)
        for i, conv in enumerate(self.dec):
            hx = conv(torch.cat((hx, skips[-1 - i]), 1))
        return hx + hxin


class U2Net(nn.Module):
    """U²-Net (``variant="u2net"``) or U²-Netp (``"u2netp"``).

    ``forward`` returns the seven sigmoid maps (d0 fused, d1..d6 side outputs), each
    N×1×H×W, in the order of the ONNX files' outputs.
    """

    def __init__(self, variant: str) -> None:
        super().__init__()
        if variant not in _STAGES:
            raise ValueError(f"variant must be one of {', '.join(_STAGES)}, got {variant!r}")
        self.variant = variant
        for name, kind, cin, mid, cout in _STAGES[variant]:
            block = RSU4F(cin, mid, cout) if kind == 0 else RSU(kind, cin, mid, cout)
            self.add_module(name, block)
        for i, ch in enumerate(_SIDES[variant], start=1):
            self.add_module(f"side{i}", nn.Conv2d(ch, 1, 3, padding=1))
        self.outconv = nn.Conv2d(6, 1, 1)

    def logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The seven maps before the sigmoid (for a numerically stable BCE)."""
        m: Any = self._modules  # name → module (typed Optional by torch)
        hx1 = m["stage1"](x)
        hx2 = m["stage2"](_pool(hx1))
        hx3 = m["stage3"](_pool(hx2))
        hx4 = m["stage4"](_pool(hx3))
        hx5 = m["stage5"](_pool(hx4))
        hx6 = m["stage6"](_pool(hx5))
        hx5d = m["stage5d"](torch.cat((upsample_like(hx6, hx5), hx5), 1))
        hx4d = m["stage4d"](torch.cat((upsample_like(hx5d, hx4), hx4), 1))
        hx3d = m["stage3d"](torch.cat((upsample_like(hx4d, hx3), hx3), 1))
        hx2d = m["stage2d"](torch.cat((upsample_like(hx3d, hx2), hx2), 1))
        hx1d = m["stage1d"](torch.cat((upsample_like(hx2d, hx1), hx1), 1))
        d1 = m["side1"](hx1d)
        sides = [d1]
        for i, feat in enumerate((hx2d, hx3d, hx4d, hx5d, hx6), start=2):
            sides.append(upsample_like(m[f"side{i}"](feat), d1))
        d0 = self.outconv(torch.cat(sides, 1))
        return [d0, *sides]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.sigmoid(d) for d in self.logits(x))


def _conv_order(model: U2Net) -> list[nn.Conv2d]:
    """The model's convolutions in the order its forward pass runs them."""
    order: list[nn.Conv2d] = []
    hooks = [
        mod.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for mod in model.modules()
        if isinstance(mod, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    return order


def load_onnx_weights(model: U2Net, onnx_path: Path) -> None:
    """Copy the Conv weights and biases of the ONNX file into ``model``.

    Raises ValueError when the file's convolutions do not match the model's one to one
    (another architecture, or another variant).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {t.name: t for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    ours = _conv_order(model)
    if len(convs) != len(ours):
        raise ValueError(
            f"{onnx_path.name}: {len(convs)} convolutions, {model.variant} has {len(ours)}"
        )
    for node, conv in zip(convs, ours, strict=True):
        weight = numpy_helper.to_array(inits[node.input[1]])
        bias = numpy_helper.to_array(inits[node.input[2]])
        if tuple(weight.shape) != tuple(conv.weight.shape) or bias.shape[0] != conv.out_channels:
            raise ValueError(
                f"{onnx_path.name}: Conv {node.output[0]} has weight {weight.shape}, "
                f"{model.variant} expects {tuple(conv.weight.shape)} there"
            )
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.array(weight, dtype=np.float32)))
            conv.bias.copy_(torch.from_numpy(np.array(bias, dtype=np.float32)))  # type: ignore[union-attr]


def from_onnx(variant: str, onnx_path: Path) -> U2Net:
    """A trainable :class:`U2Net` of ``variant`` with the weights of ``onnx_path``."""
    model = U2Net(variant)
    load_onnx_weights(model, Path(onnx_path))
    model.eval()
    return model
