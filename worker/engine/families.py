"""Model families: how an image becomes a model input and an output becomes a mask.

One class per family, as rembg's ``sessions/`` has one per model kind; a
:class:`~worker.engine.models.ModelSpec` names its family. Both steps are pure functions
of their inputs, so they are unit-tested without a model.

U²-Net (rembg 2.0.86, ``sessions/u2net.py`` and ``sessions/base.py``): RGB, LANCZOS to
320×320, divide by the image maximum, normalise with ImageNet mean and std, NCHW float32;
output 0, channel 0, min-max normalised, ``(pred * 255).astype(uint8)`` (truncation),
LANCZOS back to the image size.

Where rembg computes in float64 we compute in float32: the model input is float32 either
way and the difference stays far below one grey level after the final rounding (the parity
tests hold us to rembg's stored outputs).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from PIL import Image


class U2NetFamily:
    """U²-Net and U²-Netp: the same pre- and post-processing."""

    input_size: ClassVar[tuple[int, int]] = (320, 320)
    mean: ClassVar[tuple[float, float, float]] = (0.485, 0.456, 0.406)
    std: ClassVar[tuple[float, float, float]] = (0.229, 0.224, 0.225)

    @classmethod
    def shrink(cls, image: Image.Image) -> np.ndarray:
        """The photo as the model sees it: ``input_size`` RGB uint8 (H×W×3), LANCZOS."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return np.asarray(rgb.resize(cls.input_size, Image.Resampling.LANCZOS))

    @classmethod
    def normalise(cls, small: np.ndarray) -> np.ndarray:
        """The 1×3×H×W float32 model input for :meth:`shrink`'s pixels."""
        pixels = np.asarray(small, dtype=np.float32)
        # rembg: x / max(max(x), 1e-6), then (x - mean) / std per channel
        peak = max(float(pixels.max()), 1e-6)
        std = np.asarray(cls.std, dtype=np.float32)
        mean = np.asarray(cls.mean, dtype=np.float32)
        pixels /= np.float32(peak)
        pixels -= mean
        pixels /= std
        return np.ascontiguousarray(pixels.transpose(2, 0, 1)[np.newaxis])

    @classmethod
    def preprocess(cls, image: Image.Image) -> np.ndarray:
        """The 1×3×H×W float32 model input for ``image`` (any mode Pillow converts to RGB)."""
        return cls.normalise(cls.shrink(image))

    @staticmethod
    def postprocess(output: np.ndarray, size: tuple[int, int]) -> Image.Image:
        """The mode-L mask of ``size`` from the model's first output (N×C×H×W).

        A constant output (rembg divides by zero there and yields NaN) gives an all-zero
        mask: the model saw nothing to separate.
        """
        pred = np.asarray(output)[0, 0]
        hi, lo = pred.max(), pred.min()
        span = hi - lo
        if not np.isfinite(span) or span <= 0:
            small = np.zeros(pred.shape, dtype=np.uint8)
        else:
            # the same float32 arithmetic as rembg, truncating like astype does
            small = ((pred - lo) / span * 255).astype(np.uint8)
        mask = Image.fromarray(small)  # uint8 H×W: mode L
        return mask.resize(size, Image.Resampling.LANCZOS)


FAMILIES: dict[str, type[U2NetFamily]] = {"u2net": U2NetFamily}
