"""``refine``: a better cutout than rembg's, opt-in (docs/refine.md).

rembg's alpha is U²-Net's 320×320 map, LANCZOS-scaled to the photo: away from the edge it
is right, but the edge is a few photo pixels soft and does not follow the photo's own
edges, and the cutout's edge pixels carry the old background's colour (and are darkened:
``Image.composite`` scales the colour by the mask). ``refine`` keeps what rembg gets right
and works on the edge:

1. **The map**: u2net's min-max-normalised 320×320 map, as rembg's. Fusion with u2netp
   (and a mirrored u2netp pass) is implemented (:data:`FUSION`) but off: it lost IoU and
   boundary F1 on the tune split (docs/refine.md).
2. **Edge-aware upsampling** (a fast guided filter, He & Sun 2015): on a coarse grid (the
   photo scaled so its long side is at most :attr:`RefineParams.coarse_side`) the fused
   map is fitted, in every (2r+1)² window, as a linear function of the photo's RGB; the
   coefficients are interpolated to the full size and applied to the full-size photo, so
   the alpha follows the photo's edges at full resolution. Only a band around the fused
   map's uncertain zone takes the filtered value; elsewhere the alpha is 0 or 255.
3. **Specks**: connected pieces of the coarse alpha smaller than
   :attr:`RefineParams.speck_fraction` of the largest piece are removed (a second subject
   of comparable size stays).
4. **Colour decontamination**: in the band, the foreground colour is solved from the
   compositing equation ``I = αF + (1 − α)B`` with ``B`` the nearby background colour
   (filled in from confident background pixels, pull–push), blended towards the nearby
   confident foreground colour where α is small, so the edge shows no fringe of the old
   background on a new one.

Memory: the coarse grid is bounded (``coarse_side``², ~100 bytes per coarse pixel, ~40 MB);
the full-size photo is read, and the RGBA result written, a strip of :data:`STRIP_PIXELS`
pixels at a time (~150 bytes per strip pixel, ~40 MB), so beyond the RGBA result (which
replaces the plain cutout's) the work adds ~80 MB, and, while the coarse grid is made, a
copy of the photo narrowed to 640 columns (12 bytes × 640 per row of the shorter side:
~54 MB at 50 MP). shared/contract/limits.py counts exactly that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from worker.engine.families import U2NetFamily
from worker.engine.imageio import row_strips

#: pixels of the full-size photo processed at once (a strip of whole rows, at least one):
#: bounds the float work arrays at ~150 bytes per strip pixel, ~40 MB, whatever the width
STRIP_PIXELS = 1 << 18


@dataclasses.dataclass(frozen=True)
class RefineParams:
    """The pipeline's settings (chosen on the tune split; see docs/refine.md)."""

    #: long side of the coarse grid the guided filter's coefficients are fitted on
    coarse_side: int = 640
    #: guided filter radius in coarse pixels, and its regularisation (on 0..1 colours)
    radius: int = 6
    eps: float = 1e-3
    #: fused probability outside (lo, hi) is certain; the band is the rest, grown by
    #: ``band`` coarse pixels
    lo: float = 0.03
    hi: float = 0.97
    band: int = 6
    #: slope of the alpha around 0.5 inside the band (1 = the filter's own output)
    gain: float = 2.5
    #: pieces smaller than this share of the largest piece are removed (0 = keep all)
    speck_fraction: float = 0.02
    #: solve the edge colour from the compositing equation
    decontaminate: bool = True


DEFAULT_PARAMS = RefineParams()


def normalise(output: np.ndarray) -> np.ndarray:
    """One model's 2-D output min-max normalised to 0..1 (rembg's step, in float32);
    a constant output gives zeros."""
    pred = np.asarray(output, dtype=np.float32)
    lo, hi = float(pred.min()), float(pred.max())
    if not np.isfinite(hi - lo) or hi - lo <= 0:
        return np.zeros(pred.shape, dtype=np.float32)
    return (pred - lo) / (hi - lo)


def fuse(maps: list[np.ndarray]) -> np.ndarray:
    """The mean of already-normalised maps of one size (flipped ones flipped back)."""
    if not maps:
        raise ValueError("nothing to fuse")
    return np.mean(np.stack(maps), axis=0).astype(np.float32)


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    k = 2 * radius + 1
    return cv2.boxFilter(x, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_coefficients(guide: np.ndarray, p: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """The colour guided filter's window-averaged coefficients (H×W×4: a_r, a_g, a_b, b)
    such that ``q = a·I + b``; ``guide`` H×W×3 and ``p`` H×W, float32 in 0..1."""
    mean_i = _box(guide, radius)
    mean_p = _box(p, radius)
    cov = _box(guide * p[..., None], radius) - mean_i * mean_p[..., None]
    r, g, b = guide[..., 0], guide[..., 1], guide[..., 2]
    mr, mg, mb = mean_i[..., 0], mean_i[..., 1], mean_i[..., 2]
    # the 3×3 colour covariance of each window, regularised, inverted in closed form
    vrr = _box(r * r, radius) - mr * mr + eps
    vrg = _box(r * g, radius) - mr * mg
    vrb = _box(r * b, radius) - mr * mb
    vgg = _box(g * g, radius) - mg * mg + eps
    vgb = _box(g * b, radius) - mg * mb
    vbb = _box(b * b, radius) - mb * mb + eps
    irr = vgg * vbb - vgb * vgb
    irg = vgb * vrb - vrg * vbb
    irb = vrg * vgb - vgg * vrb
    igg = vrr * vbb - vrb * vrb
    igb = vrb * vrg - vrr * vgb
    ibb = vrr * vgg - vrg * vrg
    det = vrr * irr + vrg * irg + vrb * irb
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    cr, cg, cb = cov[..., 0], cov[..., 1], cov[..., 2]
    a_r = (irr * cr + irg * cg + irb * cb) / det
    a_g = (irg * cr + igg * cg + igb * cb) / det
    a_b = (irb * cr + igb * cg + ibb * cb) / det
    b0 = mean_p - a_r * mr - a_g * mg - a_b * mb
    coef = np.stack([a_r, a_g, a_b, b0], axis=-1).astype(np.float32)
    return _box(coef, radius)


def pull_push(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``values`` (H×W×C) where ``weights`` (H×W, 0..1) is high, filled in elsewhere from
    the nearest weighted values (a pull–push pyramid); zeros when no weight at all."""
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    vw: np.ndarray = values * weights[..., None]
    w: np.ndarray = weights.astype(np.float32)
    while True:
        levels.append((vw, w))
        h, wd = w.shape
        if max(h, wd) <= 1:
            break
        size = (max(1, (wd + 1) // 2), max(1, (h + 1) // 2))
        vw = cv2.resize(vw, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)
        w = cv2.resize(w, size, interpolation=cv2.INTER_AREA)
    vw, w = levels[-1]
    filled = vw / np.maximum(w, 1e-6)[..., None]
    for vw, w in reversed(levels[:-1]):
        h, wd = w.shape
        up = cv2.resize(filled, (wd, h), interpolation=cv2.INTER_LINEAR).reshape(h, wd, -1)
        # trust a level's own average as far as it has weight
        trust = np.clip(w * 4.0, 0.0, 1.0)[..., None]
        own = vw / np.maximum(w, 1e-6)[..., None]
        filled = trust * own + (1.0 - trust) * up
    return filled.astype(np.float32)


def _remap(
    src: np.ndarray,
    scale_x: float,
    scale_y: float,
    x: np.ndarray,
    y: np.ndarray,
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """``src`` sampled at the full-size pixel centres ``x`` (columns) × ``y`` (rows), as
    a half-pixel-centred resize would."""
    map_x = np.broadcast_to(
        ((x + 0.5) * scale_x - 0.5).astype(np.float32)[None, :], (y.size, x.size)
    )
    map_y = np.broadcast_to(
        ((y + 0.5) * scale_y - 0.5).astype(np.float32)[:, None], (y.size, x.size)
    )
    out = cv2.remap(
        np.ascontiguousarray(src),
        np.ascontiguousarray(map_x),
        np.ascontiguousarray(map_y),
        interpolation,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out


def _remove_specks(solid: np.ndarray, fraction: float) -> np.ndarray:
    """A mask of the pieces of ``solid`` (bool) smaller than ``fraction`` of the largest."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        solid.astype(np.uint8), connectivity=8
    )
    if count <= 2 or fraction <= 0:
        return np.zeros(solid.shape, dtype=bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    small = np.flatnonzero(areas < fraction * areas.max()) + 1
    return np.isin(labels, small)


def refine(rgb: np.ndarray, prob: np.ndarray, params: RefineParams = DEFAULT_PARAMS) -> np.ndarray:
    """:func:`refine_picture` of an H×W×3 uint8 array, as an H×W×4 uint8 RGBA array (a
    read-only view of the picture's pixels)."""
    return np.asarray(refine_picture(Image.fromarray(rgb), prob, params))


def _rows(image: Image.Image, y0: int, y1: int) -> np.ndarray:
    """Rows ``y0``..``y1`` of ``image`` as RGB uint8 (converted from any mode)."""
    strip = image.crop((0, y0, image.width, y1))
    return np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"))


def _coarse_guide(image: Image.Image, cw: int, ch: int) -> np.ndarray:
    """``image`` area-averaged to cw×ch as float32 0..1: the same 8-bit values as OpenCV's
    INTER_AREA on the whole array, reading the photo a strip at a time.

    A whole-number factor on both axes is OpenCV's block-average path (rounded half up):
    strips of whole blocks, resized as they are. Any other ratio is its separable area
    filter (rounded half to even): the rows are narrowed first, in float32 (12 bytes × 640
    per row of the shorter side, ~54 MB for a 50 MP photo), then the columns."""
    width, height = image.size
    if (cw, ch) == (width, height):
        return _rows(image, 0, height).astype(np.float32) / 255.0
    fx, fy = width // cw, height // ch
    if fx * cw == width and fy * ch == height:
        small = np.empty((ch, cw, 3), dtype=np.uint8)
        for y0, y1 in row_strips(width, height, STRIP_PIXELS, multiple=fy):
            small[y0 // fy : y1 // fy] = cv2.resize(
                _rows(image, y0, y1), (cw, (y1 - y0) // fy), interpolation=cv2.INTER_AREA
            )
        return small.astype(np.float32) / 255.0
    narrow = np.empty((height, cw, 3), dtype=np.float32)
    for y0, y1 in row_strips(width, height, STRIP_PIXELS):
        strip = _rows(image, y0, y1).astype(np.float32)
        narrow[y0:y1] = cv2.resize(strip, (cw, y1 - y0), interpolation=cv2.INTER_AREA)
    small_f = cv2.resize(narrow, (cw, ch), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(small_f), 0, 255).astype(np.float32) / 255.0


@dataclasses.dataclass
class _Coarse:
    """What :func:`refine_picture` works out on the coarse grid (``cw`` × ``ch``): the
    guided filter's coefficients, the band and speck flags (2 channels), and the nearby
    foreground and background colours (6 channels; None without ``decontaminate``)."""

    cw: int
    ch: int
    coef: np.ndarray
    flags: np.ndarray
    fills: np.ndarray | None


def _coarse(image: Image.Image, prob: np.ndarray, params: RefineParams) -> _Coarse:
    """The coarse grid's part of :func:`refine_picture`: where the edge band is, which
    specks go, the filter's coefficients and the colour fills."""
    width, height = image.size
    scale = min(1.0, params.coarse_side / max(width, height))
    cw, ch = max(1, round(width * scale)), max(1, round(height * scale))
    guide = _coarse_guide(image, cw, ch)
    p_c = cv2.resize(prob, (cw, ch), interpolation=cv2.INTER_LINEAR)
    coef = guided_coefficients(guide, p_c, params.radius, params.eps)
    q_c = np.einsum("hwc,hwc->hw", coef[..., :3], guide) + coef[..., 3]

    unknown: np.ndarray = ((p_c > params.lo) & (p_c < params.hi)).astype(np.uint8)
    if params.band > 0:
        k = 2 * params.band + 1
        unknown = cv2.dilate(unknown, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    band_c = unknown.astype(bool)
    alpha_c = np.where(band_c, q_c, (p_c >= 0.5).astype(np.float32))
    drop_c = _remove_specks(alpha_c >= 0.5, params.speck_fraction)

    fills = None
    if params.decontaminate:
        fg_w = (alpha_c > 0.97).astype(np.float32)
        bg_w = (alpha_c < 0.03).astype(np.float32)
        fg_fill = pull_push(guide, fg_w)
        bg_fill = pull_push(guide, bg_w)
        fills = np.concatenate([fg_fill, bg_fill], axis=-1)
    # band and drop as one 2-channel coarse float map, sampled nearest
    flags = np.stack([band_c, drop_c], axis=-1).astype(np.float32)
    return _Coarse(cw, ch, coef, flags, fills)


def _refined_rows(
    image: Image.Image,
    prob: np.ndarray,
    coarse: _Coarse,
    params: RefineParams,
    y0: int,
    y1: int,
) -> np.ndarray:
    """Rows ``y0``..``y1`` of the refined cutout: RGBA uint8, the image's width."""
    width, height = image.size
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(y0, y1, dtype=np.float64)
    sx, sy = coarse.cw / width, coarse.ch / height
    photo = _rows(image, y0, y1).astype(np.float32) / 255.0
    p_full = _remap(prob, prob.shape[1] / width, prob.shape[0] / height, xs, ys)
    flag = _remap(coarse.flags, sx, sy, xs, ys, cv2.INTER_NEAREST)
    band, drop = flag[..., 0] > 0.5, flag[..., 1] > 0.5
    alpha = (p_full >= 0.5).astype(np.float32)
    rgb_out = photo
    if band.any():
        kc = _remap(coarse.coef, sx, sy, xs, ys)
        q = np.einsum("hwc,hwc->hw", kc[..., :3], photo) + kc[..., 3]
        if params.gain != 1.0:
            q = (q - 0.5) * params.gain + 0.5
        alpha = np.where(band, np.clip(q, 0.0, 1.0), alpha)
    alpha[drop] = 0.0
    if coarse.fills is not None and band.any():
        f = _remap(coarse.fills, sx, sy, xs, ys)
        fg, bg = f[..., :3], f[..., 3:]
        a = alpha[..., None]
        solved = np.clip((photo - (1.0 - a) * bg) / np.maximum(a, 1e-3), 0.0, 1.0)
        # where α is small the solution amplifies noise: lean on the nearby foreground
        mix = np.clip(a, 0.0, 1.0)
        colour = mix * solved + (1.0 - mix) * fg
        rgb_out = np.where((band & (alpha < 1.0))[..., None], colour, photo)
    out = np.empty((ys.size, width, 4), dtype=np.uint8)
    out[..., 3] = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    # fully transparent pixels carry no colour (as rembg's cutout): smaller files
    out[..., :3] = np.clip(rgb_out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out[..., :3] *= (out[..., 3] > 0)[..., None]
    return out


def refine_picture(
    image: Image.Image, prob: np.ndarray, params: RefineParams = DEFAULT_PARAMS
) -> Image.Image:
    """The refined cutout (RGBA, colours decontaminated) of the photo ``image`` (any mode;
    its colours are read as RGB) from the fused probability ``prob`` (any size, float32
    0..1). The photo is read and the cutout written a strip at a time, so beyond the
    RGBA result the work adds the coarse grid and one strip (module doc, Memory)."""
    width, height = image.size
    coarse = _coarse(image, prob, params)
    picture = Image.new("RGBA", (width, height))
    for y0, y1 in row_strips(width, height, STRIP_PIXELS):
        rows = _refined_rows(image, prob, coarse, params, y0, y1)
        picture.paste(Image.fromarray(rows), (0, y0))
    return picture


#: the maps averaged by :func:`refine_probability` ("_flip": of the mirrored photo). Fusion
#: with u2netp (and its flip) was measured and rejected: on the tune split it cost
#: −0.014 IoU and −0.019 boundary F1 against u2net alone (docs/refine.md)
FUSION: tuple[str, ...] = ("u2net",)
#: the models ``refine_probability`` may run
MODELS = ("u2net", "u2netp")

Infer = Callable[[str, np.ndarray], np.ndarray]


def refine_probability(image: Image.Image, infer: Infer) -> np.ndarray:
    """The fused 320×320 probability of ``image``: ``infer(model, batch)`` runs a model on
    an N×3×320×320 batch (each model once, the flipped copy in the same call)."""
    batch = U2NetFamily.preprocess(image)
    maps: list[np.ndarray] = []
    for model in MODELS:
        wanted = [name for name in FUSION if name.split("_")[0] == model]
        if not wanted:
            continue
        flip = f"{model}_flip" in wanted
        inputs = np.concatenate([batch, batch[..., ::-1]]) if flip else batch
        output = infer(model, np.ascontiguousarray(inputs))
        if model in wanted:
            maps.append(normalise(output[0, 0]))
        if flip:
            maps.append(normalise(output[1, 0])[:, ::-1])
    return fuse(maps)


def refine_image(
    image: Image.Image, probability: np.ndarray, params: RefineParams = DEFAULT_PARAMS
) -> tuple[Image.Image, Image.Image]:
    """(alpha as mode L, the refined cutout as RGBA) of ``image`` refined from the fused
    ``probability`` (:func:`refine_probability`). The cutout's colours are the
    decontaminated foreground colours; the render (worker/engine/render.py) puts the
    (post-processed) alpha on it in place, so it is not copied again: the picture belongs
    to one render, and a second one needs a fresh call (or a copy)."""
    picture = refine_picture(image, probability, params)
    return picture.getchannel("A"), picture
