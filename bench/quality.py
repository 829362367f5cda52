"""The quality score (worker/engine/quality.py): fit it, measure it, time it.

    python bench/quality_data.py --make --maps          # truth and cached maps, once
    python bench/quality.py --fit                       # writes worker/engine/quality_model.py
    python bench/quality.py --loso                      # the choice's tables (add --fit to write)
    python bench/quality.py --report train heldout      # AUROC, Spearman, catch rates
    python bench/quality_data.py --eval                 # the evaluation set's maps
    python bench/quality.py --report eval               # the check nothing was fitted on
    python bench/quality.py --cpu 12                    # CPU of plain / basic / full jobs

The label of a photo is the IoU (α ≥ 128) of u2net's exact cutout (rembg's mask) against
its truth. ``--fit`` fits on the ``train`` split only: the model (features, ridge or
boosted stumps, how strongly regularised) is chosen leave one source out
(bench/quality_fit.py: fitted on three sources' train split, measured on the fourth's
heldout split), refitted on all of train and calibrated (isotonic, IoU on its
leave-one-source-out predictions on train); the review threshold is the folds' median
best-F1 cut and each flag's threshold is chosen on train. ``--report`` prints, per split and
per category, for each method (``basic``, ``full``, the ``full`` variants with every
second opinion measured, and the baselines: u2net/u2netp disagreement alone, soft-pixel
share alone): AUROC of the risk (1 − score) for IoU < 0.9 and < 0.8, Spearman's rank
correlation of score and IoU, the share of bad (IoU < 0.8) cutouts among the lowest 10%
and 20%, and the mean absolute error of the score as an IoU estimate.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import quality_fit as qf  # noqa: E402
import quality_stats as qs  # noqa: E402
from quality_data import OUT, Sample, cache_path, load, photo320, samples  # noqa: E402

from worker.engine import quality  # noqa: E402

MODEL_FILE = ROOT / "worker" / "engine" / "quality_model.py"
#: second opinions measured: a name → the raw map from the cached maps
OPINIONS: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    "u2netp": lambda m: m["u2netp"],
    "u2netp_flip": lambda m: m["u2netp_flip"],
    "u2netp+flip": lambda m: (
        (quality.normalised(m["u2netp"]) + quality.normalised(m["u2netp_flip"])) / 2
    ),
    "u2net_s224": lambda m: m["u2net_s224"],
}
CHOSEN = qf.CHOSEN
FLAG_PRECISION = 0.8


def table(split: str) -> list[dict]:
    """One row per sample of ``split`` whose maps are cached: source, category, iou and
    every feature (``agree_iou@<opinion>``, ``agree_mad@<opinion>`` for each second
    opinion); rows are cached per photo in ``bench/out/quality/features.json``."""
    cache = OUT / "features.json"
    known: dict[str, dict] = json.loads(cache.read_text()) if cache.exists() else {}
    wanted = [*quality.BASIC, *(f"agree_iou@{o}" for o in OPINIONS)]
    rows = []
    for sample in samples(split):
        key = f"{cache_path(sample).stem}:{sample.mask_path.name}"
        row = known.get(key)
        if row is None or any(k not in row for k in wanted):
            maps = load(sample)
            if maps is None:
                continue
            row = known[key] = _row(sample, maps)
        rows.append({**row, "source": sample.source, "category": sample.category})
    cache.write_text(json.dumps(known))
    return rows


def _row(sample: Sample, maps: dict[str, np.ndarray]) -> dict:
    row: dict = {"source": sample.source, "category": sample.category, "iou": float(maps["iou"])}
    row["image"] = str(sample.image_path.relative_to(sample.image_path.parents[2]))
    row.update(quality.basic_features(maps["u2net"], photo320(sample)))
    for name, opinion in OPINIONS.items():
        for key, value in quality.agreement(maps["u2net"], opinion(maps)).items():
            row[f"{key}@{name}"] = value
    return row


def fit_level(train: list[dict], heldout: list[dict], level: str) -> tuple[dict, dict]:
    """(stored model, fit report) of ``level``: the candidate chosen leave one source out
    (bench/quality_fit.py), refitted on every train row, and an isotonic calibration of
    its leave-one-source-out predictions on train to IoU; or, when the choice's mean
    AUROC does not beat the former model's (qf.CURRENT) by more than qf.REPLACE_MARGIN,
    that model as it was (calibrated on its 5-fold predictions)."""
    chosen, results = qf.select(train, heldout, level, qf.candidates())
    iou = np.asarray([r["iou"] for r in train])
    current = results[qf.CURRENT]["summary"]["auc"]
    if results[chosen]["summary"]["auc"] > current + qf.REPLACE_MARGIN:
        knots = qs.isotonic(results[chosen]["oof"], iou)
        cut = results[chosen]["summary"]["cut"]
    else:  # the shipped model as it was: its calibration and its review threshold
        chosen = qf.CURRENT
        oof = qf.kfold(chosen, train, level)
        knots = qs.isotonic(oof, iou)
        cut = qf.review_below(qf.calibrate(oof, knots), iou)
    model = qf.train(chosen, train, level)
    report = {"model": chosen.name, "loso": results[chosen]["summary"], "results": results}
    report["cut"] = cut
    return qf.stored(chosen, model, level, knots), report


def loso_table(level: str, results: dict[qf.Candidate, dict], chosen: qf.Candidate) -> None:
    """Every candidate's leave-one-source-out summary, best first, and the chosen and
    the former (5-fold) choice per left-out source."""
    print(f"\n## {level}: leave one source out (mean over the 4 sources; worst source)")
    print(
        f"{'candidate':26s} {'n':>3s} {'AUC.8':>6s} {'AUC.9':>6s} {'AUC':>7s} {'worst':>6s} "
        f"{'rho':>6s} {'MAE':>6s} {'worst':>6s} {'cut':>5s}"
    )
    order = sorted(results, key=lambda c: -results[c]["summary"]["auc"])
    keys = ("auc8", "auc9", "auc", "worst_auc", "rho", "mae", "worst_mae")
    for c in order:
        s = results[c]["summary"]
        mark = " (5-fold CV's)" if c == qf.CURRENT else ""
        mark += " <- chosen" if c == chosen else ""
        cells = " ".join(f"{s[k]:7.4f}" if k == "auc" else f"{s[k]:6.3f}" for k in keys)
        print(f"{c.name:26s} {len(c.names(level)):3d} {cells} {s['cut']:5.2f}{mark}")
    for c in dict.fromkeys((chosen, qf.CURRENT)):
        for source, f in results[c]["folds"].items():
            text = " ".join(f"{k} {f[k]:.3f}" for k in ("auc8", "auc9", "rho", "mae"))
            print(f"  {c.name:26s} left out {source:8s} {text} cut {f['cut']:.2f}")


def flag_thresholds(rows: list[dict]) -> dict[str, float]:
    """Each flag's threshold on the training rows: the loosest (most items flagged, up to
    half) whose flagged items are bad (IoU < 0.9) at least :data:`FLAG_PRECISION` of the
    time, else the most precise with at least 3% flagged; ``no_subject`` is a definition
    (under 0.05% of the frame)."""
    bad = np.asarray([r["iou"] < 0.9 for r in rows])
    out = {"no_subject": 0.0005}

    def choose(values: np.ndarray, below: bool) -> float:
        fallback = (-1.0, 0.0)
        for q in np.linspace(0.5, 0.03, 48):
            t = float(np.quantile(values, q if below else 1 - q))
            hit = values < t if below else values > t
            if hit.sum() < 0.03 * len(values):
                continue
            precision = float(bad[hit].mean())
            if precision >= FLAG_PRECISION:
                return round(t, 5)
            fallback = max(fallback, (precision, t))
        return round(fallback[1], 5)

    def col(name: str) -> np.ndarray:
        return np.asarray([r[name] for r in rows])

    out["tiny_subject"] = choose(col("area"), below=True)
    # the largest piece's share, among the photos whose mask has several pieces
    several = np.where(col("pieces") >= 2, col("largest_share"), 1.0)
    out["several_pieces"] = choose(several, below=True)
    out["touches_frame"] = choose(col("border"), below=False)
    out["uncertain_edges"] = choose(col("soft_width"), below=False)
    out["low_contrast"] = choose(col("contrast"), below=True)
    out["models_disagree"] = choose(col(f"agree_iou@{CHOSEN}"), below=True)
    return out


def _json(value: dict, indent: str = "") -> str:
    """``value`` as JSON text in lines of at most 96 characters (lists wrapped)."""
    inner = indent + "  "
    lines = []
    for key, item in value.items():
        prefix = f"{inner}{json.dumps(key)}: "
        if isinstance(item, dict):
            lines.append(prefix + _json(item, inner).lstrip())
        else:
            text = prefix + json.dumps(item)
            lines.append(
                textwrap.fill(
                    text,
                    96,
                    subsequent_indent=inner + "  ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
    return indent + "{\n" + ",\n".join(lines) + "\n" + indent + "}"


def fit(write: bool = True, show: bool = False) -> int:
    """Choose (leave one source out), fit and, with ``write``, store both levels' models,
    the flags' thresholds and the review threshold; ``show`` prints the choice's tables."""
    rows, heldout = table("train"), table("heldout")
    fitted = {level: fit_level(rows, heldout, level) for level in quality.LEVELS}
    thresholds = flag_thresholds(rows)
    review = fitted["basic"][1]["cut"]
    if show:
        for level, (_, rep) in fitted.items():
            chosen = next(c for c in rep["results"] if c.name == rep["model"])
            loso_table(level, rep["results"], chosen)
        opinions(rows, heldout, next(c for c in fitted["full"][1]["results"]
                                     if c.name == fitted["full"][1]["model"]))  # fmt: skip
    said = {
        level: f"{rep['model']} ({rep['loso']['auc']:.4f})" for level, (_, rep) in fitted.items()
    }
    model = _json({level: stored for level, (stored, _) in fitted.items()})
    text = (
        '"""The quality score\'s fitted model (docs/quality.md). Generated: do not edit.\n\n'
        "Regenerate with ``python bench/quality_data.py --make --maps`` then\n"
        "``python bench/quality.py --fit``; fitted on the generated train split only\n"
        f"({len(rows)} photos), chosen leave one source out (fitted on three sources' train\n"
        "split, measured on the fourth's heldout split; mean AUROC of IoU < 0.8 and < 0.9):\n"
        f"basic: {said['basic']}, full: {said['full']}.\n"
        '"""\n\n'
        "import json\nfrom typing import Any\n\n"
        f'MODEL: dict[str, Any] = json.loads(\n    """\n{model}\n"""\n)\n\n'
        f'FLAG_THRESHOLDS: dict[str, float] = json.loads(\n    """\n{_json(thresholds)}\n"""\n)\n'
        "\n#: the review threshold's default: the basic score's cut with the best F1 for\n"
        "#: IoU < 0.8 (the median over the leave-one-source-out folds for a new choice; the\n"
        "#: shipped model's own, on its 5-fold out-of-fold scores, when it is kept)\n"
        f"REVIEW_BELOW = {review}\n"
    )
    if write:
        MODEL_FILE.write_text(text)
        importlib.reload(quality.quality_model)
        print(MODEL_FILE)
    print("chosen:", said, "flags:", thresholds, "review below", review)
    return 0


def opinions(rows: list[dict], heldout: list[dict], chosen: qf.Candidate) -> None:
    """The chosen ``full`` candidate's leave-one-source-out AUROC with each second opinion
    (for the record: the second opinion itself stays quality.SECOND_MODEL, mirrored)."""
    print("\nsecond opinions, leave one source out with", chosen.name)
    for name in OPINIONS:
        candidate = dataclasses.replace(chosen, opinion=name)
        s = qf.summary(qf.loso(candidate, rows, heldout, "full")["folds"])
        print(
            f"  {name:12s} AUC.8 {s['auc8']:.3f} AUC.9 {s['auc9']:.3f} worst {s['worst_auc']:.3f}"
        )


def methods(rows: list[dict]) -> dict[str, np.ndarray]:
    """Each method's score per row (higher = more likely right)."""
    out = {
        "basic": np.asarray([quality.score(r, "basic") for r in rows]),
        "full": np.asarray([quality.score({**r, **_chosen(r)}, "full") for r in rows]),
        "disagreement u2net/u2netp": np.asarray([r["agree_iou@u2netp"] for r in rows]),
        "soft-pixel share": -np.asarray([r["soft_share"] for r in rows]),
    }
    for name in OPINIONS:
        out[f"agreement {name}"] = np.asarray([r[f"agree_iou@{name}"] for r in rows])
    return out


def _chosen(row: dict) -> dict[str, float]:
    return {n: row[f"{n}@{CHOSEN}"] for n in quality.AGREE}


def report(split: str, by_category: bool) -> None:
    rows = table(split)
    iou = np.asarray([r["iou"] for r in rows])
    scores = methods(rows)
    groups: dict[str, np.ndarray] = {"all": np.ones(len(rows), bool)}
    if by_category:
        for source in sorted({r["source"] for r in rows}):
            groups[source] = np.asarray([r["source"] == source for r in rows])
        for key in sorted({f"{r['source']}/{r['category']}" for r in rows}):
            groups[key] = np.asarray([f"{r['source']}/{r['category']}" == key for r in rows])
    print(
        f"\n## {split}: {len(rows)} photos, IoU<0.9: {np.mean(iou < 0.9):.0%}, "
        f"IoU<0.8: {np.mean(iou < 0.8):.0%}"
    )
    print(
        f"{'group':26s} {'method':28s} {'n':>4s} {'bad8':>4s} {'AUC.9':>6s} {'AUC.8':>6s} "
        f"{'rho':>6s} {'c10':>5s} {'c20':>5s} {'MAE':>6s}"
    )
    for group, keep in groups.items():
        for name, s in scores.items():
            if group != "all" and name not in ("basic", "full", "disagreement u2net/u2netp"):
                continue
            print(f"{group:26s} {name:28s} " + " ".join(_cells(s[keep], iou[keep], name)))
    bad = iou < 0.8
    if bad.any():
        print(f"(the lowest 20% can hold at most {min(1.0, 0.2 * len(iou) / bad.sum()):.0%} "
              "of the bad cutouts)")  # fmt: skip
    for level in ("basic", "full"):
        review = scores[level] < quality.REVIEW_BELOW
        print(
            f"review ({level} score < {quality.REVIEW_BELOW}): {review.mean():.0%} of photos, "
            f"{(review & bad).sum() / max(bad.sum(), 1):.0%} of the IoU < 0.8 ones; "
            f"{bad[review].mean() if review.any() else 0:.0%} of them IoU < 0.8, "
            f"{(iou[review] < 0.9).mean() if review.any() else 0:.0%} IoU < 0.9"
        )
    print(f"\n{'flag':18s} {'flagged':>8s} {'IoU<0.9 among them':>19s} {'mean IoU':>9s}")
    for code, level in ((c, "full" if c == "models_disagree" else "basic") for c in quality.FLAGS):
        hit = np.asarray([code in quality.flags({**r, **_chosen(r)} if level == "full" else r)
                          for r in rows])  # fmt: skip
        share = f"{np.mean(iou[hit] < 0.9):.0%}" if hit.any() else "-"
        mean = f"{iou[hit].mean():.3f}" if hit.any() else "-"
        print(f"{code:18s} {hit.mean():8.0%} {share:>19s} {mean:>9s}")


def _cells(s: np.ndarray, iou: np.ndarray, name: str) -> list[str]:
    def f(v: float | None, width: int = 6, pct: bool = False) -> str:
        if v is None:
            return f"{'-':>{width}s}"
        return f"{v:>{width}.0%}" if pct else f"{v:>{width}.3f}"

    mae = float(np.abs(s - iou).mean()) if name in ("basic", "full") else None
    bad = iou < 0.8
    return [
        f"{len(s):4d}",
        f"{int(bad.sum()):4d}",
        f(qs.auroc(-s, iou < 0.9)),
        f(qs.auroc(-s, bad)),
        f(qs.spearman(s, iou)),
        f(qs.caught(-s, bad, 0.1), 5, True),
        f(qs.caught(-s, bad, 0.2), 5, True),
        f(mae),
    ]


def cpu(n: int, rounds: int) -> None:
    """CPU seconds per photo of a plain exact job, and of the score's extra work."""
    from quality_cpu import compare

    compare([s.image_path for s in samples("heldout")][:: max(1, 238 // n)][:n], rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", action="store_true", help="choose, fit, write the model")
    parser.add_argument("--loso", action="store_true", help="print the leave-one-source-out choice")
    parser.add_argument("--report", nargs="*", metavar="SPLIT", help="train heldout eval")
    parser.add_argument("--categories", action="store_true", help="per source/category too")
    parser.add_argument("--cpu", type=int, metavar="N", help="time N held-out photos")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.fit or args.loso:
        fit(write=args.fit, show=args.loso)
    for split in args.report or ():
        report(split, args.categories)
    if args.cpu:
        started = time.perf_counter()
        cpu(args.cpu, args.rounds)
        print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
