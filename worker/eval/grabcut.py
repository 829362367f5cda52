"""GrabCut baseline (Rother et al., 2004) as the seed article ran it: OpenCV's
``grabCut`` initialised with a rectangle 5% inside the image border, 5 iterations.

OpenCV is an optional dependency (``pip install 'cutout[eval]'``); it is imported when
the baseline runs, and its absence is reported by :func:`require_cv2`.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
from PIL import Image

INSET = 0.05
ITERATIONS = 5
INSTALL_HINT = "the GrabCut baseline needs OpenCV: pip install 'cutout[eval]'"


class OpenCVMissing(RuntimeError):
    """OpenCV (cv2) is not installed."""


def require_cv2() -> ModuleType:
    """Import cv2 or raise OpenCVMissing with the install command."""
    try:
        import cv2
    except ImportError as exc:
        raise OpenCVMissing(f"{INSTALL_HINT} ({exc})") from None
    return cv2


def rectangle(width: int, height: int, inset: float = INSET) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the rectangle ``inset`` of each side inside the border."""
    # at least one pixel of the border is background, or GrabCut has no background model
    dx, dy = max(1, round(width * inset)), max(1, round(height * inset))
    return dx, dy, max(1, width - 2 * dx), max(1, height - 2 * dy)


def grabcut_mask(image: Image.Image, iterations: int = ITERATIONS) -> np.ndarray:
    """GrabCut's binary foreground (0 or 255, uint8) for an RGB(A) image.

    Deterministic: OpenCV's random generator (used by its GMM initialisation) is seeded.
    Raises OpenCVMissing without OpenCV, ValueError when OpenCV refuses the image (one
    too small to hold a rectangle inside its border).
    """
    cv2 = require_cv2()
    rgb = np.asarray(image.convert("RGB"))
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    height, width = rgb.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(
            bgr, mask, rectangle(width, height), bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT
        )
    except cv2.error as exc:
        raise ValueError(f"GrabCut failed on a {width}x{height} image: {exc}") from None
    foreground = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    return np.where(foreground, 255, 0).astype(np.uint8)
