"""Reports of an :class:`~worker.eval.runner.EvalResult`: the terminal table and a
self-contained HTML page (inline SVG charts, base64 thumbnails, no external files)."""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
from PIL import Image

from worker.eval import changes, score_report
from worker.eval.metrics import METRICS
from worker.eval.runner import EvalResult

LABELS = {
    "iou": "IoU",
    "f_score": "F (β²=0.3)",
    "f1": "F1",
    "mae": "MAE",
    "boundary_f1": "Boundary F1 (3 px)",
}
SHORT = {"iou": "IoU", "f_score": "F", "f1": "F1", "mae": "MAE", "boundary_f1": "BF1"}
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip
WORST = 10


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def format_table(result: EvalResult) -> str:
    """The seed-style table: categories as columns, mean IoU and F per method, then every
    metric overall."""
    categories = list(result.by_category)
    headers = [f"{c} ({_count(result, c)})" for c in categories] + [
        f"overall ({len(result.items)})"
    ]
    names = [m.name for m in result.methods]
    width = max([len("method"), *map(len, names)])
    cols = [max(7, len(h)) for h in headers]
    lines = [
        "  ".join(
            [
                "method".ljust(width),
                "metric".ljust(6),
                *(h.rjust(w) for h, w in zip(headers, cols, strict=True)),
            ]
        )
    ]
    for name in names:
        for metric in ("iou", "f_score"):
            blocks = [result.by_category[c][name] for c in categories] + [result.summary[name]]
            cells = [_fmt(b[metric]).rjust(w) for b, w in zip(blocks, cols, strict=True)]
            label = name if metric == "iou" else ""
            lines.append("  ".join([label.ljust(width), SHORT[metric].ljust(6), *cells]))
    lines.append("")
    heads = [SHORT[m] for m in METRICS] + ["s/img", "n", "errors"]
    lines.append("  ".join(["method".ljust(width), *(h.rjust(6) for h in heads)]))
    for name in names:
        s = result.summary[name]
        cells = [_fmt(s[m]) for m in METRICS] + [
            _fmt(s["seconds_per_image"], 2),
            str(s["n"]),
            str(s["errors"]),
        ]
        lines.append("  ".join([name.ljust(width), *(c.rjust(6) for c in cells)]))
    lines.append("")
    lines.append(
        "IoU, F (β²=0.3), F1 at alpha ≥ 128; MAE of the soft alpha (0..1, lower is better); "
        "BF1: boundary F1 within 3 px; means over images."
    )
    scores = score_report.table_lines(result)
    return "\n".join([*lines, *([""] if scores else []), *scores])


def _count(result: EvalResult, category: str) -> int:
    return sum(1 for row in result.items if row["category"] == category)


# --- HTML -------------------------------------------------------------------------------


def _png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _jpeg(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def error_map(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB picture of agreement: white both foreground, dark both background, red false
    foreground (prediction only), blue missed foreground (truth only)."""
    t, p = truth >= 128, pred >= 128
    out = np.full((*t.shape, 3), 40, np.uint8)
    out[t & p] = (235, 235, 235)
    out[p & ~t] = (230, 60, 60)
    out[t & ~p] = (60, 120, 240)
    return out


def bar_chart(result: EvalResult, metric: str) -> str:
    """Inline SVG: one group of bars per category and overall, one bar per method."""
    groups = [*result.by_category, "overall"]
    names = [m.name for m in result.methods]

    def value(group: str, name: str) -> float | None:
        block = result.summary[name] if group == "overall" else result.by_category[group][name]
        return block[metric]

    values = [v for v in (value(g, n) for g in groups for n in names) if v is not None]
    if METRICS[metric]:
        # zoom in on the range the values span (differences of 0.01 matter), ticks say where
        top, bottom = 1.0, max(0.0, math.floor((min(values, default=0.0) - 0.05) * 10) / 10)
    else:
        top, bottom = max([*values, 0.01]) * 1.15, 0.0
    bar, left, plot_h, base_y = 14, 44, 180, 200
    group_w = max(len(names) * bar + 18, 96)  # room for the category's name
    width = left + len(groups) * group_w + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
        f'height="{base_y + 40}" role="img" aria-label="{html.escape(LABELS[metric])}">'
    ]
    for tick in range(5):
        share = tick / 4
        y = base_y - share * plot_h
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" class="tick">'
            f"{bottom + share * (top - bottom):.2f}</text>"
        )
    for gi, group in enumerate(groups):
        x0 = left + gi * group_w + (group_w - len(names) * bar) / 2
        for ni, name in enumerate(names):
            v = value(group, name)
            if v is None:
                continue
            h = max(0.5, (v - bottom) / (top - bottom) * plot_h)
            parts.append(
                f'<rect x="{x0 + ni * bar:.1f}" y="{base_y - h:.1f}" width="{bar - 2}" '
                f'height="{h:.1f}" fill="{PALETTE[ni % len(PALETTE)]}">'
                f"<title>{html.escape(name)} · {html.escape(group)}: {v:.3f}</title></rect>"
            )
        parts.append(
            f'<text x="{x0 + len(names) * bar / 2:.1f}" y="{base_y + 16}" class="group">'
            f"{html.escape(group)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend(result: EvalResult) -> str:
    return score_report.legend([m.name for m in result.methods], PALETTE)


def _summary_table(result: EvalResult) -> str:
    head = "".join(f"<th>{html.escape(LABELS[m])}</th>" for m in METRICS)
    rows = []
    for method in result.methods:
        s = result.summary[method.name]
        options = method.describe().get("options") or {}
        detail = ", ".join(f"{k}={v}" for k, v in options.items())
        if method.refine is not None:
            refine = method.refine
            text = f"refine={refine.kind} (radius {refine.radius}, eps {refine.eps:g})"
            detail = ", ".join(filter(None, [detail, text]))
        cells = "".join(f"<td>{_fmt(s[m])}</td>" for m in METRICS)
        rows.append(
            f"<tr><th>{html.escape(method.name)}</th><td>{html.escape(detail or 'defaults')}</td>"
            f"{cells}<td>{_fmt(s['seconds_per_image'], 2)}</td><td>{s['n']}</td>"
            f"<td>{s['errors']}</td></tr>"
        )
    return (
        f"<table><tr><th>method</th><th>options</th>{head}<th>s/image</th><th>n</th>"
        f"<th>errors</th></tr>{''.join(rows)}</table>"
    )


def _worst(result: EvalResult, name: str) -> str:
    scored = [
        (row["results"][name]["iou"], index)
        for index, row in enumerate(result.items)
        if not row.get("error") and "iou" in row["results"].get(name, {})
    ]
    scored.sort()
    rows = []
    for iou, index in scored[:WORST]:
        row = result.items[index]
        r = row["results"][name]
        pics = result.thumbs.get(index)
        cells = ""
        if pics is not None and name in pics.predictions:
            pred = pics.predictions[name]
            cells = (
                f'<td><img src="{_jpeg(pics.image)}" alt="image"></td>'
                f'<td><img src="{_png(pics.truth)}" alt="truth"></td>'
                f'<td><img src="{_png(pred)}" alt="prediction"></td>'
                f'<td><img src="{_png(error_map(pics.truth, pred))}" alt="errors"></td>'
            )
        quality = ""
        if r.get("score") is not None:
            flags = " ".join(r["flags"]) or "no flags"
            quality = f"<br>score {r['score']:.3f} · {html.escape(flags)}"
        rows.append(
            f"<tr><td>{html.escape(row['image'])}<br><small>{html.escape(row['category'])}"
            f"<br>IoU {iou:.3f} · BF1 {r['boundary_f1']:.3f} · MAE {r['mae']:.3f}{quality}"
            f"</small></td>{cells}</tr>"
        )
    return (
        "<table class='worst'><tr><th>item</th><th>image</th><th>truth</th><th>prediction</th>"
        f"<th>errors</th></tr>{''.join(rows)}</table>"
    )


def _items_table(result: EvalResult) -> str:
    names = [m.name for m in result.methods]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for row in result.items:
        if row.get("error"):
            cells = f"<td colspan='{len(names)}' class='err'>{html.escape(row['error'])}</td>"
        else:
            cells = ""
            for n in names:
                r = row["results"].get(n, {})
                text = _fmt(r["iou"]) if "iou" in r else html.escape(r.get("error", "–"))
                cells += f"<td>{text}</td>"
        rows.append(
            f"<tr><td>{html.escape(row['image'])}</td><td>{html.escape(row['category'])}</td>"
            f"{cells}</tr>"
        )
    return f"<table><tr><th>image</th><th>category</th>{head}</tr>{''.join(rows)}</table>"


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right}th:first-child,td:first-child{text-align:left}
.worst img{display:block;max-width:192px;background:#eee}.err{color:#b00;text-align:left}
.chart .grid{stroke:#e4e4e4}.chart .tick{font-size:10px;text-anchor:end;fill:#666}
.chart .group{font-size:11px;text-anchor:middle}.key{margin-right:1em;white-space:nowrap}
.key i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
figure{display:inline-block;margin:0 1.5em 1em 0}figcaption{font-weight:600}
"""


def render_html(result: EvalResult, *, manifest: str, command: str | None = None) -> str:
    """The self-contained HTML report (charts, summary, ten worst per method, all items)."""
    charts = "".join(
        f"<figure><figcaption>{html.escape(LABELS[m])}"
        f"{' (lower is better)' if not METRICS[m] else ''}</figcaption>{bar_chart(result, m)}"
        "</figure>"
        for m in METRICS
    )
    worst = "".join(
        f"<details{' open' if i == 0 else ''}><summary>{html.escape(m.name)}: the {WORST} "
        f"lowest IoU</summary>{_worst(result, m.name)}</details>"
        for i, m in enumerate(result.methods)
    )
    cmd = f"<p><code>{html.escape(command)}</code></p>" if command else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>cutout eval: {html.escape(manifest)}</title>"
        f"<style>{STYLE}{score_report.STYLE}</style></head><body>"
        f"<h1>cutout eval</h1><p>Manifest: <code>{html.escape(manifest)}</code>, "
        f"{len(result.items)} images.</p>{cmd}"
        "<p>IoU, F (β²=0.3) and F1 of the masks at alpha ≥ 128; MAE of the soft alpha "
        "(0..1); boundary F1: boundary pixels matched within 3 px. Means over images.</p>"
        f"<h2>Summary</h2>{_summary_table(result)}"
        f"<h2>By category</h2><p>{_legend(result)}</p>{charts}"
        "<h2>Worst images</h2><p>Errors: <span style='color:#e63c3c'>red</span> false "
        "foreground, <span style='color:#3c78f0'>blue</span> missed foreground.</p>"
        f"{score_report.section(result)}"
        f"{worst}{changes.section(result, _png, _jpeg, error_map)}"
        f"<h2>All images (IoU)</h2>{_items_table(result)}</body></html>"
    )
