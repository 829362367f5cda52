"""The quality score in the reports: how well each model column's score finds its bad
cutouts (worker/eval/scoring.py's figures), as terminal lines and as an HTML section with
a scatter of score against IoU per column (inline SVG, no script)."""

from __future__ import annotations

import html
from typing import Any

from worker.eval.runner import EvalResult
from worker.eval.scoring import BAD, BAD_BELOW, SHARES, key

#: one colour per category in the scatter
COLOURS = ("#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#9c755f")
SIDE, PAD = 300, 40


def scored_methods(result: EvalResult) -> list[str]:
    """The columns that carry a score (model columns), in order."""
    return [m.name for m in result.methods if result.summary[m.name].get("quality") is not None]


def _num(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:.0%}" if pct else f"{value:.3f}"


def _cells(q: dict[str, Any]) -> list[str]:
    """n, bad, AUROCs, ρ, caught, review (bad) of one quality block, formatted."""
    return [
        str(q["n"]),
        *(str(q[key("bad", t)]) for t in BAD_BELOW),
        *(_num(q[key("auroc", t)]) for t in BAD_BELOW),
        _num(q["spearman"]),
        *(_num(q[key("caught", s)], pct=True) for s in SHARES),
        f"{q['review']} ({q['review_bad']})",
        _num(q["mean_score"]),
    ]


HEADS = [
    "n",
    *(f"IoU<{t}" for t in BAD_BELOW),
    *(f"AUC<{t}" for t in BAD_BELOW),
    "ρ",
    *(f"low {s:.0%}" for s in SHARES),
    "review (bad)",
    "mean",
]


def _groups(result: EvalResult, name: str) -> list[tuple[str, dict[str, Any]]]:
    groups = [(c, blocks[name]["quality"]) for c, blocks in result.by_category.items()]
    return [*groups, ("overall", result.summary[name]["quality"])]


def table_lines(result: EvalResult) -> list[str]:
    """The terminal table: per scored column, a line per category and overall."""
    names = scored_methods(result)
    if not names:
        return []
    width = max(len("column / category"), *(len(c) + 2 for c in result.by_category))
    width = max(width, *map(len, names))
    lines = [
        "quality score: AUROC of 1 − score for IoU below 0.9 / 0.8, Spearman's ρ, the share "
        f"of IoU < {BAD} cutouts among the lowest-scored 10% / 20%, photos to review "
        f"(score < {result.review_below}) and the bad ones among them",
        "  ".join(["column / category".ljust(width), *(h.rjust(8) for h in HEADS)]),
    ]
    for name in names:
        level = result.summary[name]["quality"]["level"]
        lines.append(f"{name} ({level})")
        for group, q in _groups(result, name):
            lines.append("  ".join([f"  {group}".ljust(width), *(c.rjust(8) for c in _cells(q))]))
    return lines


def scatter(result: EvalResult, name: str) -> str:
    """Inline SVG: one dot per scored photo, score across, IoU up, coloured by category;
    dashed lines at the review threshold and at IoU 0.8 and 0.9, a faint diagonal where
    the score equals the IoU (the score estimates it)."""
    categories = list(result.by_category)
    width, height = SIDE + 2 * PAD, SIDE + PAD // 2 + 36

    def x(v: float) -> float:
        return PAD + v * SIDE

    def y(v: float) -> float:
        return PAD / 2 + (1 - v) * SIDE

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="scatter" width="{width}" '
        f'height="{height}" role="img" aria-label="score against IoU: {html.escape(name)}">'
        f'<rect x="{x(0)}" y="{y(1)}" width="{SIDE}" height="{SIDE}" class="frame"/>'
    ]
    for tick in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{y(0) + 14:.1f}" class="xt">{tick:.1f}</text>'
            f'<text x="{x(0) - 4:.1f}" y="{y(tick) + 4:.1f}" class="yt">{tick:.1f}</text>'
        )
    for t in BAD_BELOW:
        parts.append(f'<line x1="{x(0)}" x2="{x(1)}" y1="{y(t):.1f}" y2="{y(t):.1f}" class="cut"/>')
    review = result.review_below
    parts.append(
        f'<line x1="{x(review):.1f}" x2="{x(review):.1f}" y1="{y(0)}" y2="{y(1)}" class="cut">'
        f"<title>review below {review}</title></line>"
        f'<line x1="{x(0)}" x2="{x(1)}" y1="{y(0)}" y2="{y(1)}" class="same"/>'
        f'<text x="{x(0.5)}" y="{height - 4}" class="xt">score</text>'
        f'<text x="12" y="{y(0.5)}" class="yt" transform="rotate(-90 12 {y(0.5)})">IoU</text>'
    )
    for row in result.items:
        r = row["results"].get(name, {}) if not row.get("error") else {}
        if r.get("score") is None or "iou" not in r:
            continue
        colour = COLOURS[categories.index(row["category"]) % len(COLOURS)]
        flags = " ".join(r.get("flags") or []) or "no flags"
        parts.append(
            f'<circle cx="{x(r["score"]):.1f}" cy="{y(r["iou"]):.1f}" r="3.5" fill="{colour}">'
            f"<title>{html.escape(row['image'])} ({html.escape(row['category'])}): score "
            f"{r['score']:.3f}, IoU {r['iou']:.3f}; {html.escape(flags)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def legend(labels: list[str], colours: tuple[str, ...]) -> str:
    """HTML keys: a swatch of ``colours[i]`` (cycled) before each of ``labels``."""
    return "".join(
        f'<span class="key"><i style="background:{colours[i % len(colours)]}"></i>'
        f"{html.escape(label)}</span>"
        for i, label in enumerate(labels)
    )


STYLE = """
.scatter .frame{fill:none;stroke:#bbb}.scatter .same{stroke:#e4e4e4}
.scatter .cut{stroke:#999;stroke-dasharray:4 3}
.scatter .xt{font-size:10px;text-anchor:middle;fill:#666}
.scatter .yt{font-size:10px;text-anchor:end;fill:#666}.scatter circle{fill-opacity:.75}
"""


def section(result: EvalResult) -> str:
    """The HTML section (empty when no column is scored)."""
    names = scored_methods(result)
    if not names:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["column", "category", *HEADS])
    rows = []
    for name in names:
        level = result.summary[name]["quality"]["level"]
        for group, q in _groups(result, name):
            cells = "".join(f"<td>{html.escape(c)}</td>" for c in _cells(q))
            rows.append(
                f"<tr><th>{html.escape(name)} ({html.escape(level)})</th>"
                f"<td>{html.escape(group)}</td>{cells}</tr>"
            )
    plots = "".join(
        f"<figure><figcaption>{html.escape(name)}: score against IoU</figcaption>"
        f"{scatter(result, name)}</figure>"
        for name in names
    )
    return (
        "<h2>Quality score</h2><p>How well each photo's quality score (docs/quality.md) "
        "finds the bad cutouts: AUROC of the risk 1 − score for IoU below 0.9 and 0.8, "
        f"Spearman's ρ of score and IoU, the share of the IoU &lt; {BAD} cutouts found by "
        "reviewing the lowest-scored 10% and 20%, the photos whose score is below the review "
        f"threshold ({result.review_below}) with the bad ones among them in brackets, and "
        "the mean score. – where a class is empty.</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
        f"<p>{legend(list(result.by_category), COLOURS)}</p><p>Dashed: IoU 0.9 and 0.8 "
        "across, the review threshold up and down; grey: score = IoU; hover a dot for the "
        f"photo.</p>{plots}"
    )
