"""Eval-only refinement: a colour guided filter of the model's alpha (He et al., 2010).

U²-Net predicts at 320×320 and its mask is scaled up to the photo, so its edge is a few
pixels soft and does not follow the photo's edges. The guided filter fits, in every
(2r+1)² window, the alpha as a linear function of the RGB colour, which snaps the edge to
colour edges in the photo. Experimental: it is not a processing option of the service.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    size = [2 * radius + 1] * 2 + [1] * (x.ndim - 2)
    return ndimage.uniform_filter(x, size=size, mode="reflect")


def guided_filter(image: Image.Image, alpha: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Alpha (uint8) filtered with the RGB image as guide; same shape as ``alpha``."""
    guide = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    p = alpha.astype(np.float32) / 255.0
    mean_i = _box(guide, radius)  # H, W, 3
    mean_p = _box(p, radius)
    cov_ip = _box(guide * p[..., None], radius) - mean_i * mean_p[..., None]
    # 3×3 covariance of the guide's colour in each window, regularised by eps
    outer = guide[..., :, None] * guide[..., None, :]  # H, W, 3, 3
    sigma = _box(outer, radius) - mean_i[..., :, None] * mean_i[..., None, :]
    sigma += eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(sigma, cov_ip[..., None])[..., 0]  # H, W, 3
    b = mean_p - np.einsum("hwc,hwc->hw", a, mean_i)
    q = np.einsum("hwc,hwc->hw", _box(a, radius), guide) + _box(b, radius)
    return np.clip(np.rint(q * 255.0), 0, 255).astype(np.uint8)
