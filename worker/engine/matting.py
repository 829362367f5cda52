"""Alpha matting, rembg's: a trimap from the mask, pymatting's closed-form alpha on it,
and pymatting's multilevel foreground colours, solved only around the edge.

rembg solves the whole picture at once: pymatting's matting Laplacian allocates ~0.5 kB
per pixel of the picture, and its split, preconditioner and solver ~3 kB more per unknown
pixel (~30 GB on a 12 MP photo). Yet only the trimap's unknown pixels (the band the
erosion leaves around the mask's edge) are solved for, every known pixel keeps its
trimap value, and the Laplacian couples a pixel only to pixels within 2 of it (its 3×3
windows). So we solve the band a box at a time, each box within
:data:`shared.contract.limits.MATTING_BOX_BYTES` by :func:`box_bytes`:

- a picture whose whole solve fits that is solved whole, exactly as rembg does (the same
  arrays, the same output bytes);
- else a grid of :data:`TILE`-pixel cells: a cell with unknown pixels is solved on the box
  of its unknown pixels grown by :data:`MARGIN` pixels of context, and only its own
  pixels are kept; a cell whose box would cost too much is cut in four (down to
  :data:`MIN_TILE`). Where a box cuts the band, its edge pixels are pinned to the alpha
  of the whole picture solved at a lower resolution (:func:`coarse_alpha`), so that what
  lies beyond the cut (a foreground 300 px away across a wide band) still counts; a part
  of the band that lies whole within a box gets the very system of the whole picture.
  Outside the band the alpha is the trimap's and the colour the photo's where it is
  opaque; every fully transparent pixel is transparent black (rembg leaves pymatting's
  estimate of a colour there, which nobody sees);
- a box without a single known pixel keeps the mask as alpha and the photo's colours.

Memory so follows one box and a few bytes per pixel (the trimap, the coarse alpha and the
RGBA result), not the picture (shared/contract/limits.py counts it; bench/matting.py measures how
close the result is to the whole-picture solve, and the cost).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from PIL import Image

from shared.contract.limits import MATTING_BOX_BYTES

log = logging.getLogger("cutout.engine")

#: the side of a cell of the grid the band is solved in
TILE = 384
#: the smallest cell a costly cell is cut down to
MIN_TILE = 96
#: pixels of context around a cell's unknown pixels
MARGIN = 64
#: what one solve allocates: per pixel of its box, and per unknown pixel of it (measured
#: on photos and noise: 2.2-3.6 kB per pixel with every pixel unknown, 0.3 kB with 5%)
BYTES_PER_BOX_PIXEL = 500
BYTES_PER_UNKNOWN_PIXEL = 3_200

UNKNOWN = 128

Box = tuple[int, int, int, int]  # left, top, right, bottom


def box_bytes(pixels: int, unknown: int) -> int:
    """What solving a box of ``pixels`` with ``unknown`` unknown pixels allocates."""
    return BYTES_PER_BOX_PIXEL * pixels + BYTES_PER_UNKNOWN_PIXEL * unknown


def erode(region: np.ndarray, size: int, *, border: int) -> np.ndarray:
    """rembg's trimap erosion, ``scipy.ndimage.binary_erosion(region, structure=S,
    border_value=border)`` with S = ``size``×``size`` ones (the 3×3 cross for 0), in time
    and memory linear in the pixels.

    scipy's erosion allocated about size⁴ × 8 bytes (size 130: 2.5 GB; 255: MemoryError).
    OpenCV erodes with a rectangular kernel as a row pass then a column pass, and uses
    the same anchor (size // 2) for even sizes; ``border`` is the value outside the image
    (0 erodes from the edges, 1 does not). Equality with scipy is a unit test
    (tests/unit/test_erosion.py).
    """
    import cv2

    kernel: np.ndarray
    if size > 0:
        kernel = np.ones((size, size), dtype=np.uint8)
    else:
        kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    out = cv2.erode(
        region.astype(np.uint8),
        kernel,
        borderType=cv2.BORDER_CONSTANT,
        borderValue=border,
    )
    return out.astype(bool)


def make_trimap(
    mask: np.ndarray, foreground_threshold: int, background_threshold: int, erode_size: int
) -> np.ndarray:
    """rembg's trimap of ``mask`` (uint8): 255 foreground, 0 background, 128 unknown."""
    is_foreground = erode(mask > foreground_threshold, erode_size, border=0)
    is_background = erode(mask < background_threshold, erode_size, border=1)
    trimap = np.full(mask.shape, dtype=np.uint8, fill_value=UNKNOWN)
    trimap[is_foreground] = 255
    trimap[is_background] = 0
    return trimap


def alpha_matting_cutout(
    image: Image.Image,
    mask: Image.Image,
    foreground_threshold: int,
    background_threshold: int,
    erode_size: int,
) -> Image.Image:
    """rembg's alpha matting: closed-form alpha and ML foreground on a trimap, RGBA.

    Raises ValueError where pymatting cannot solve it (no foreground or no background in
    the trimap), as rembg's does, so the caller falls back to the plain cutout.
    """
    rgb = np.asarray(image.convert("RGB"))
    mask_array = np.asarray(mask.convert("L"))
    trimap = make_trimap(mask_array, foreground_threshold, background_threshold, erode_size)
    if not (trimap == 0).any():
        raise ValueError("the trimap has no background")
    if not (trimap == 255).any():
        raise ValueError("the trimap has no foreground")
    return Image.fromarray(matte(rgb, trimap, mask_array), "RGBA")


def matte(
    rgb: np.ndarray,
    trimap: np.ndarray,
    mask: np.ndarray,
    *,
    tile: int = TILE,
    margin: int = MARGIN,
    budget: int = MATTING_BOX_BYTES,
) -> np.ndarray:
    """The RGBA cutout (uint8) of ``rgb`` on ``trimap``: solved whole where that fits
    ``budget`` bytes, else a box at a time (cells of ``tile`` pixels, ``margin`` pixels
    of context); ``mask`` is the alpha of a cell no known pixel anchors."""
    height, width = trimap.shape
    unknown = trimap == UNKNOWN
    count = int(unknown.sum())
    if box_bytes(height * width, count) <= budget:
        return solve(rgb, ~unknown, trimap)
    guide = coarse_alpha(rgb, trimap, budget, count / (height * width))
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    opaque = trimap == 255
    np.copyto(rgba[..., :3], rgb, where=opaque[..., None])
    rgba[..., 3][opaque] = 255
    del opaque
    for cell, box in band_boxes(unknown, (0, 0, width, height), tile, margin, budget):
        left, top, right, bottom = box
        target = rgba[cell[1] : cell[3], cell[0] : cell[2]]
        known, values = pinned(trimap, guide, box)
        solved = None
        if known.any():
            try:
                solved = solve(np.ascontiguousarray(rgb[top:bottom, left:right]), known, values)
            except ValueError as exc:  # pymatting's CG did not converge on this box
                log.info("alpha matting: the box %s keeps the mask (%s)", box, exc)
        if solved is None:  # nothing anchors the solve: the mask's alpha, the photo
            target[..., :3] = rgb[cell[1] : cell[3], cell[0] : cell[2]]
            target[..., 3] = mask[cell[1] : cell[3], cell[0] : cell[2]]
        else:
            target[...] = solved[cell[1] - top : cell[3] - top, cell[0] - left : cell[2] - left]
            # transparent black, as outside the boxes (pymatting estimates a colour there)
            target[target[..., 3] == 0] = 0
    return rgba


def band_boxes(
    unknown: np.ndarray, area: Box, tile: int, margin: int, budget: int
) -> Iterator[tuple[Box, Box]]:
    """For each ``tile`` cell of ``area`` holding unknown pixels: the part of the cell
    within the box it is solved on, and that box (the cell's unknown pixels' box grown
    by ``margin``, within the picture). The cell's pixels outside the box are known. A
    cell whose box would cost more than ``budget`` is cut in four, down to MIN_TILE."""
    height, width = unknown.shape
    for top in range(area[1], area[3], tile):
        bottom = min(area[3], top + tile)
        for left in range(area[0], area[2], tile):
            right = min(area[2], left + tile)
            found = _unknown_box((left, top, right, bottom), unknown)
            if found is None:
                continue
            box = (
                max(0, found[0] - margin),
                max(0, found[1] - margin),
                min(width, found[2] + margin),
                min(height, found[3] + margin),
            )
            pixels = (box[2] - box[0]) * (box[3] - box[1])
            count = int(unknown[box[1] : box[3], box[0] : box[2]].sum())
            if tile > MIN_TILE and box_bytes(pixels, count) > budget:
                yield from band_boxes(
                    unknown, (left, top, right, bottom), tile // 2, margin, budget
                )
                continue
            cell = (max(left, box[0]), max(top, box[1]), min(right, box[2]), min(bottom, box[3]))
            yield cell, box


def _unknown_box(cell: Box, unknown: np.ndarray) -> Box | None:
    """The box of ``cell``'s unknown pixels, in picture coordinates; None if none."""
    left, top, right, bottom = cell
    part = unknown[top:bottom, left:right]
    ys = np.flatnonzero(part.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(part[ys[0] : ys[-1] + 1].any(axis=0))
    return (left + int(xs[0]), top + int(ys[0]), left + int(xs[-1]) + 1, top + int(ys[-1]) + 1)


def pinned(trimap: np.ndarray, guide: np.ndarray | None, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """The known pixels of ``box`` and their values (0..255): the trimap's, and where the
    box cuts the band inside the picture, its edge pixels pinned to the coarse
    ``guide``."""
    left, top, right, bottom = box
    values = trimap[top:bottom, left:right].copy()
    known = values != UNKNOWN
    if guide is None:
        return known, values
    height, width = trimap.shape
    edge = np.zeros_like(known)
    edge[0] |= top > 0
    edge[-1] |= bottom < height
    edge[:, 0] |= left > 0
    edge[:, -1] |= right < width
    edge &= ~known
    values[edge] = guide[top:bottom, left:right][edge]
    return known | edge, values


def coarse_alpha(
    rgb: np.ndarray, trimap: np.ndarray, budget: int, unknown: float
) -> np.ndarray | None:
    """The closed-form alpha of the whole picture scaled down until its solve fits
    ``budget``, scaled back up (uint8): where a box cuts the band, what lies beyond the
    cut. ``unknown``: the trimap's fraction of unknown pixels. None when the scaled
    trimap lost its foreground or background."""
    import cv2

    height, width = trimap.shape
    per_pixel = BYTES_PER_BOX_PIXEL + BYTES_PER_UNKNOWN_PIXEL * unknown
    scale = min(0.5, (budget / per_pixel / (height * width)) ** 0.5)
    while True:
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        small = cv2.resize(trimap, size, interpolation=cv2.INTER_AREA)
        small[(small != 0) & (small != 255)] = UNKNOWN
        if box_bytes(size[0] * size[1], int((small == UNKNOWN).sum())) <= budget:
            break
        scale *= 0.8
    if not ((small == 0).any() and (small == 255).any()):
        return None
    image = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) / 255.0
    alpha = closed_form_alpha(image, small != UNKNOWN, small)
    levels = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.resize(levels, (width, height), interpolation=cv2.INTER_LINEAR)  # type: ignore[no-any-return]


def solve(rgb: np.ndarray, known: np.ndarray, values: np.ndarray) -> np.ndarray:
    """pymatting's closed-form alpha and ML foreground of ``rgb`` (uint8), where the
    ``known`` pixels have alpha ``values`` (0..255), as rembg computes them; RGBA uint8."""
    from pymatting import estimate_foreground_ml, stack_images

    image = rgb / 255.0
    alpha = closed_form_alpha(image, known, values)
    foreground = estimate_foreground_ml(image, alpha)
    cutout = stack_images(foreground, alpha)
    return np.clip(cutout * 255, 0, 255).astype(np.uint8)  # type: ignore[no-any-return]


def closed_form_alpha(image: np.ndarray, known: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``pymatting.estimate_alpha_cf(image, trimap / 255)`` for a trimap of 0, 128 and
    255: the same Laplacian, the same split into unknown and known pixels, the same
    preconditioned CG, so the same alpha. Here known pixels may hold any value (0..255),
    and need not include both foreground and background (pymatting refuses that; the
    unknown pixels then take the one value, as in the whole picture)."""
    from pymatting.laplacian.cf_laplacian import cf_laplacian
    from pymatting.preconditioner.ichol import ichol
    from pymatting.solver.cg import cg

    laplacian = cf_laplacian(image, is_known=known)
    flat_known = known.ravel()
    unknown = ~flat_known
    rows = laplacian[unknown, :]
    among_unknown = rows[:, unknown]
    x = values.ravel() / 255.0
    b = -rows[:, flat_known].dot(x[flat_known])
    # no foreground coupled to the unknown pixels: they are background (CG would divide
    # 0 by 0 on a zero right-hand side)
    x[unknown] = cg(among_unknown, b, M=ichol(among_unknown)) if b.any() else 0.0
    return np.clip(x, 0, 1).reshape(known.shape)  # type: ignore[no-any-return]


def warm_alpha_matting() -> None:
    """Run alpha matting once on a tiny image: numba compiles pymatting on first use
    (tens of seconds, cached on disk afterwards), better at worker start than in a job."""
    image = Image.new("RGB", (16, 16), (0, 0, 255))
    image.paste((255, 0, 0), (4, 4, 12, 12))
    mask = Image.new("L", (16, 16), 0)
    mask.paste(255, (5, 5, 11, 11))
    mask.paste(128, (4, 4, 12, 5))
    alpha_matting_cutout(image, mask, 240, 10, 1)
