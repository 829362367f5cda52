"""Run the methods over the manifest's items and aggregate the metrics.

The engine is passed in (``worker.engine.Engine``, or anything with ``render_assessed``),
so this module does not load a model by itself. A model column's photos are scored as
jobs are (worker/engine/quality.py, at the column's ``score`` level) from the map their
cutout was made from: each row gains ``score``, ``flags`` and ``review``, and each block of
the summary a ``quality`` block (worker/eval/scoring.py).

Per-item failures (an undecodable image, a mask of another size than its image, an engine
error) are recorded on the item and left out of the means; they never stop the run.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from shared.contract.options import Options
from shared.errors import CutoutError
from worker.eval.grabcut import grabcut_mask
from worker.eval.manifest import Item
from worker.eval.methods import Method
from worker.eval.metrics import F_BETA2, THRESHOLD, evaluate, mean_metrics
from worker.eval.refine import guided_filter
from worker.eval.scoring import definitions, summarize

if TYPE_CHECKING:
    from worker.engine.quality import Quality

THUMB_SIDE = 192


class Renderer(Protocol):
    def render_assessed(
        self, image: Image.Image, options: Options
    ) -> tuple[Image.Image, Quality | None]: ...


Decoder = Callable[[bytes], Image.Image]
Progress = Callable[[int, int], None]


@dataclasses.dataclass
class ItemThumbs:
    """Small pictures of one item for the HTML report."""

    image: bytes  # JPEG
    truth: np.ndarray  # uint8, thumbnail size
    predictions: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class EvalResult:
    methods: list[Method]
    items: list[dict[str, Any]]
    summary: dict[str, dict[str, Any]]
    by_category: dict[str, dict[str, dict[str, Any]]]
    thumbs: dict[int, ItemThumbs] = dataclasses.field(default_factory=dict)
    #: CUTOUT_REVIEW_BELOW: ``review`` is a score below it
    review_below: float = 0.85

    @property
    def failed(self) -> int:
        """Item×method results that are errors."""
        return sum(s["errors"] for s in self.summary.values())

    def to_json(self, manifest: str | None = None) -> dict[str, Any]:
        return {
            "manifest": manifest,
            "definitions": {
                "threshold": THRESHOLD,
                "f_score_beta2": F_BETA2,
                "boundary_tolerance_px": 3,
                "mean": "over images",
                "quality": definitions(self.review_below),
            },
            "methods": [m.describe() for m in self.methods],
            "summary": self.summary,
            "by_category": self.by_category,
            "items": self.items,
        }


def alpha_of(picture: Image.Image) -> np.ndarray:
    """The alpha of a rendered result: the A channel of a cutout, or the L mask itself."""
    if "A" in picture.getbands():
        return np.asarray(picture.getchannel("A"))
    return np.asarray(picture.convert("L"))


def predict(
    method: Method, image: Image.Image, engine: Renderer | None
) -> tuple[np.ndarray, Quality | None]:
    """The predicted alpha (uint8, image-sized) of one method for one image, and the
    quality of the model's map it came from (None for a baseline, or when scoring failed)."""
    if method.kind == "baseline":
        return grabcut_mask(image), None
    if engine is None:
        raise ValueError(f"{method.name} needs the engine")
    picture, quality = engine.render_assessed(image, method.render_options())
    alpha = alpha_of(picture)
    if method.refine is not None:
        alpha = guided_filter(image, alpha, method.refine.radius, method.refine.eps)
    return alpha, quality


def load_truth(path: Any) -> np.ndarray:
    """The truth mask as uint8 greyscale."""
    with Image.open(path) as mask:
        return np.asarray(mask.convert("L"))


def _thumb(array: np.ndarray) -> np.ndarray:
    picture = Image.fromarray(array)
    picture.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(picture)


def _jpeg_thumb(image: Image.Image) -> bytes:
    picture = image.convert("RGB")
    picture.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def run_eval(
    items: list[Item],
    methods: list[Method],
    *,
    decode: Decoder,
    engine: Renderer | None = None,
    thumbs: bool = False,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    review_below: float = 0.85,
) -> EvalResult:
    """Evaluate every method on every item; see the module docstring for failures.
    ``review_below`` is CUTOUT_REVIEW_BELOW (a row's ``review``: its score is below)."""
    rows: list[dict[str, Any]] = []
    pictures: dict[int, ItemThumbs] = {}
    seen_errors: set[tuple[str, str]] = set()
    total, done = len(items) * len(methods), 0

    def note(method: str, message: str) -> None:
        if warn and (method, message) not in seen_errors:
            seen_errors.add((method, message))
            warn(f"{method}: {message}")

    def tick(runs: int) -> None:
        nonlocal done
        done += runs
        if progress:
            progress(done, total)

    for index, item in enumerate(items):
        row, opened = open_item(item, decode)
        rows.append(row)
        if opened is None:
            note(item.image, row["error"])
            tick(len(methods))
            continue
        image, truth = opened
        if thumbs:
            pictures[index] = ItemThumbs(image=_jpeg_thumb(image), truth=_thumb(truth))
        for method in methods:
            result, pred = measure(method, image, truth, engine, review_below)
            row["results"][method.name] = result
            if pred is None:
                note(method.name, result["error"])
            elif thumbs:
                pictures[index].predictions[method.name] = _thumb(pred)
            tick(1)
    scored = {m.name: m.options.score for m in methods if m.kind == "model" and m.options}
    summary, by_category = aggregate(rows, [m.name for m in methods], scored, review_below)
    return EvalResult(methods, rows, summary, by_category, pictures, review_below)


def open_item(
    item: Item, decode: Decoder
) -> tuple[dict[str, Any], tuple[Image.Image, np.ndarray] | None]:
    """The item's row (its ``width`` and ``height``, or its ``error``) and its decoded
    image and truth mask; None for those when either cannot be read or their sizes
    differ."""
    row: dict[str, Any] = {
        "image": item.image,
        "mask": item.mask,
        "category": item.category,
        "error": None,
        "results": {},
    }
    try:
        image = decode(item.image_path.read_bytes())
        truth = load_truth(item.mask_path)
        if truth.shape != (image.height, image.width):
            raise ValueError(
                f"mask is {truth.shape[1]}x{truth.shape[0]} but the image is "
                f"{image.width}x{image.height}"
            )
    except (CutoutError, OSError, ValueError, Image.DecompressionBombError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row, None
    row["width"], row["height"] = image.width, image.height
    return row, (image, truth)


def measure(
    method: Method,
    image: Image.Image,
    truth: np.ndarray,
    engine: Renderer | None,
    review_below: float,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """One method on one item: (its row's result, the predicted alpha), or ({"error": …},
    None) when it failed. A model column's result carries its quality fields."""
    start = time.perf_counter()
    try:
        pred, quality = predict(method, image, engine)
        if pred.shape != truth.shape:
            raise ValueError(f"prediction {pred.shape} differs from truth {truth.shape}")
    except (CutoutError, OSError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}, None
    seconds = time.perf_counter() - start
    result: dict[str, Any] = evaluate(pred, truth)
    result["seconds"] = round(seconds, 4)
    if method.kind == "model":
        result.update(_quality_fields(quality, review_below))
    return result, pred


def _quality_fields(quality: Quality | None, review_below: float) -> dict[str, Any]:
    """A model column's row: ``score``, ``flags`` and ``review`` (None, [] and None when
    the map could not be scored)."""
    if quality is None:
        return {"score": None, "flags": [], "review": None}
    return {
        "score": quality.score,
        "flags": list(quality.flags),
        "review": quality.score < review_below,
    }


def _method_rows(rows: Iterable[Mapping[str, Any]], method: str) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for row in rows:
        if row.get("error"):
            out.append({"error": row["error"]})
        else:
            out.append(row["results"].get(method) or {"error": "not run"})
    return out


def aggregate(
    rows: list[dict[str, Any]],
    methods: list[str],
    scored: Mapping[str, str] | None = None,
    review_below: float = 0.85,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, dict[str, Any]]]]:
    """Means per method overall and per category (means over images, errors skipped).

    Returns (summary, by_category): ``summary[method]`` and
    ``by_category[category][method]`` hold :func:`mean_metrics` plus
    ``seconds_per_image`` and ``quality``: :func:`worker.eval.scoring.summarize` for the
    methods of ``scored`` (method → its score level), None for the others.
    """
    scored = scored or {}

    def block(selected: list[dict[str, Any]], method: str) -> dict[str, Any]:
        results = _method_rows(selected, method)
        out = mean_metrics(results)
        times = [r["seconds"] for r in results if not r.get("error") and "seconds" in r]
        out["seconds_per_image"] = round(float(np.mean(times)), 4) if times else None
        level = scored.get(method)
        out["quality"] = None if level is None else summarize(results, level, review_below)
        return out

    summary = {method: block(rows, method) for method in methods}
    categories = sorted({row["category"] for row in rows})
    by_category = {
        category: {
            method: block([r for r in rows if r["category"] == category], method)
            for method in methods
        }
        for category in categories
    }
    return summary, by_category
