"""The HTML report's "changed most" section: for every column ``X+refine`` beside its
column ``X``, the ten images whose IoU and boundary F1 moved most between the two."""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np

from worker.eval.runner import EvalResult

CHANGED = 10


def pairs(result: EvalResult) -> list[tuple[str, str]]:
    """(exact, refined) column names present in ``result``."""
    names = [m.name for m in result.methods]
    return [
        (n[: -len("+refine")], n)
        for n in names
        if n.endswith("+refine") and n[: -len("+refine")] in names
    ]


def changed_most(result: EvalResult, before: str, after: str) -> list[tuple[float, int]]:
    """(|ΔIoU| + |ΔBF1|, item index), largest first, at most :data:`CHANGED`."""
    scored = []
    for index, row in enumerate(result.items):
        a, b = row["results"].get(before, {}), row["results"].get(after, {})
        if row.get("error") or "iou" not in a or "iou" not in b:
            continue
        change = abs(b["iou"] - a["iou"]) + abs(b["boundary_f1"] - a["boundary_f1"])
        scored.append((change, index))
    scored.sort(key=lambda pair: -pair[0])
    return scored[:CHANGED]


def section(
    result: EvalResult,
    png: Callable[[np.ndarray], str],
    jpeg: Callable[[bytes], str],
    error_map: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> str:
    """The HTML of the section (empty when there is no ``+refine`` pair)."""
    parts = []
    for before, after in pairs(result):
        rows = []
        for _, index in changed_most(result, before, after):
            row = result.items[index]
            a, b = row["results"][before], row["results"][after]
            pics = result.thumbs.get(index)
            cells = ""
            if pics is not None and before in pics.predictions and after in pics.predictions:
                cells = (
                    f'<td><img src="{jpeg(pics.image)}" alt="image"></td>'
                    f'<td><img src="{png(pics.truth)}" alt="truth"></td>'
                    f'<td><img src="{png(error_map(pics.truth, pics.predictions[before]))}" '
                    'alt="before"></td>'
                    f'<td><img src="{png(error_map(pics.truth, pics.predictions[after]))}" '
                    'alt="after"></td>'
                )
            rows.append(
                f"<tr><td>{html.escape(row['image'])}<br><small>"
                f"{html.escape(row['category'])}<br>IoU {a['iou']:.3f} → {b['iou']:.3f}"
                f"<br>BF1 {a['boundary_f1']:.3f} → {b['boundary_f1']:.3f}"
                f"<br>MAE {a['mae']:.3f} → {b['mae']:.3f}</small></td>{cells}</tr>"
            )
        parts.append(
            f"<details open><summary>{html.escape(before)} → {html.escape(after)}: the "
            f"{CHANGED} images that changed most (|ΔIoU| + |ΔBF1|)</summary>"
            "<table class='worst'><tr><th>item</th><th>image</th><th>truth</th>"
            f"<th>errors {html.escape(before)}</th><th>errors {html.escape(after)}</th></tr>"
            f"{''.join(rows)}</table></details>"
        )
    if not parts:
        return ""
    return "<h2>Changed most by refine</h2>" + "".join(parts)
