"""Statistics and fitting for bench/quality.py, in numpy and scipy only (deterministic).

- :func:`auroc`, :func:`spearman`, :func:`caught`: how well a score ranks the bad cutouts,
  from worker/eval/scoring.py (``cutout eval`` reports the same figures);
- :func:`ridge`: a ridge regression on standardised features (a penalty per feature);
- :func:`boost`, :func:`boosted`: boosted stumps summed into monotone step functions;
- :func:`isotonic`: pool-adjacent-violators, the non-decreasing fit of y on x, as knots;
- :func:`cross_predictions`: out-of-fold linear predictions (k folds, fixed assignment).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from worker.eval.scoring import auroc, caught, spearman

__all__ = [
    "auroc", "boost", "boosted", "caught", "cross_predictions", "folds", "isotonic",
    "predict", "ridge", "spearman",
]  # fmt: skip


def ridge(
    x: np.ndarray, y: np.ndarray, alpha: float | np.ndarray, weight: np.ndarray | None = None
) -> dict:
    """Standardisation and weights of a ridge regression of y on x (intercept unpenalised;
    ``alpha`` one penalty, or one per feature)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    w = np.ones(len(y)) if weight is None else weight
    zc = np.column_stack([np.ones(len(y)), z])
    penalty = np.diag(np.concatenate([[0.0], np.broadcast_to(alpha, z.shape[1])]))
    beta = np.linalg.solve(zc.T @ (zc * w[:, None]) + penalty, zc.T @ (w * y))
    return {"mean": mean, "scale": scale, "coef": beta[1:], "intercept": float(beta[0])}


def predict(model: dict, x: np.ndarray) -> np.ndarray:
    return ((x - model["mean"]) / model["scale"]) @ model["coef"] + model["intercept"]


def isotonic(x: np.ndarray, y: np.ndarray, knots: int = 24) -> tuple[list[float], list[float]]:
    """The non-decreasing least-squares fit of y on x (pool adjacent violators), reduced to
    at most ``knots`` (x, y) points for linear interpolation."""
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x)[order], np.asarray(y, float)[order]
    blocks: list[list[float]] = []  # [sum, count, x_sum]
    for xi, yi in zip(xs, ys, strict=True):
        blocks.append([yi, 1.0, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, c, xsum = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][2] += xsum
    bx = np.asarray([b[2] / b[1] for b in blocks])
    by = np.asarray([b[0] / b[1] for b in blocks])
    if len(bx) > knots:
        pick = np.unique(np.linspace(0, len(bx) - 1, knots).round().astype(int))
        bx, by = bx[pick], by[pick]
    return [round(float(v), 5) for v in bx], [round(float(v), 5) for v in by]


def folds(groups: Sequence[str], k: int) -> np.ndarray:
    """A fold number per item, so items of one group (source/category) spread over folds
    in a fixed order: item i of a group goes to fold i mod k."""
    seen: dict[str, int] = {}
    out = np.empty(len(groups), int)
    for i, g in enumerate(groups):
        out[i] = seen.get(g, 0) % k
        seen[g] = seen.get(g, 0) + 1
    return out


def cross_predictions(
    x: np.ndarray, y: np.ndarray, fold: np.ndarray, alpha: float, weight: np.ndarray | None
) -> np.ndarray:
    """Each item's linear prediction from a ridge fitted on the other folds."""
    out = np.empty(len(y))
    for f in np.unique(fold):
        train = fold != f
        model = ridge(x[train], y[train], alpha, None if weight is None else weight[train])
        out[~train] = predict(model, x[~train])
    return out


def _best_stump(
    r: np.ndarray,
    left: list[np.ndarray],
    count: list[np.ndarray],
    leaf: int,
    monotone: Sequence[int] | None,
    factor: np.ndarray,
) -> tuple[int, int]:
    """The feature and cut of the stump with the largest damped gain on the residuals
    ``r`` that keeps ``leaf`` items a side and the feature's monotone sign; (-1, -1)
    when none does."""
    n = len(r)
    total = r.sum()
    best = (0.0, -1, -1)
    for j in range(len(left)):
        s_left = r @ left[j]
        n_left = count[j]
        ok = (n_left >= leaf) & (n - n_left >= leaf)
        if monotone is not None and monotone[j]:
            # the right side's mean minus the left's must have the constraint's sign
            rise = (total - s_left) / np.maximum(n - n_left, 1) - s_left / np.maximum(n_left, 1)
            ok &= rise * monotone[j] >= 0
        gain = np.where(ok, s_left**2 / np.maximum(n_left, 1), 0.0) + np.where(
            ok, (total - s_left) ** 2 / np.maximum(n - n_left, 1), 0.0
        )
        k = int(np.argmax(gain))
        if ok[k] and gain[k] * factor[j] > best[0]:
            best = (float(gain[k] * factor[j]), j, k)
    return best[1], best[2]


def _step_tables(
    steps: list[dict[float, float]], offsets: np.ndarray
) -> list[tuple[list[float], list[float]]]:
    """Each feature's (thresholds, values) from its steps (left minus right) and offset."""
    tables = []
    for j in range(len(steps)):
        thresholds = sorted(steps[j])
        # value for v in (t[i-1], t[i]]: the offset plus every step whose threshold >= v
        tail = np.cumsum([steps[j][t] for t in thresholds][::-1])[::-1]
        values = [float(v) + offsets[j] for v in tail] + [float(offsets[j])]
        tables.append((thresholds, values))
    return tables


def boost(
    x: np.ndarray,
    y: np.ndarray,
    rounds: int,
    rate: float,
    monotone: Sequence[int] | None = None,
    bins: int = 19,
    leaf: int = 8,
    damp: Sequence[float] | None = None,
) -> dict:
    """Gradient boosting of stumps (least squares), summed per feature into step functions:
    ``{"base": b, "steps": [(thresholds, values) per feature]}``, where a feature's
    contribution is ``values[searchsorted(thresholds, v, side="left")]`` (thresholds are
    upper bounds of the left side: v <= t goes left). Candidate thresholds are the
    ``bins`` inner quantiles of each feature; a leaf keeps at least ``leaf`` items.
    ``monotone[j]`` = +1 (or −1) keeps feature j's function non-decreasing (non-increasing):
    only stumps rising (falling) from left to right are taken; 0 leaves it free.
    ``damp[j]`` (0..1, default 1) regularises feature j: a stump on it competes with its
    gain times ``damp[j]`` and adds ``damp[j]`` times its step."""
    n, d = x.shape
    factor = np.ones(d) if damp is None else np.asarray(damp, float)
    cuts = [np.unique(np.quantile(x[:, j], np.linspace(0, 1, bins + 2)[1:-1])) for j in range(d)]
    left = [x[:, j][:, None] <= c[None, :] for j, c in enumerate(cuts)]  # n × cuts
    count = [m.sum(axis=0) for m in left]
    base = float(y.mean())
    pred = np.full(n, base)
    steps: list[dict[float, float]] = [{} for _ in range(d)]  # threshold → left minus right
    offsets = np.zeros(d)  # what every value of a feature gets (the right side's sum)
    for _ in range(rounds):
        r = y - pred
        j, k = _best_stump(r, left, count, leaf, monotone, factor)
        if j < 0:
            break
        goes_left = left[j][:, k]
        a = rate * factor[j] * r[goes_left].mean()
        b = rate * factor[j] * r[~goes_left].mean()
        pred += np.where(goes_left, a, b)
        t = float(cuts[j][k])
        steps[j][t] = steps[j].get(t, 0.0) + (a - b)
        offsets[j] += b
    return {"base": base, "steps": _step_tables(steps, offsets)}


def boosted(model: dict, x: np.ndarray) -> np.ndarray:
    out = np.full(len(x), model["base"])
    for j, (thresholds, values) in enumerate(model["steps"]):
        out += np.asarray(values)[np.searchsorted(thresholds, x[:, j], side="left")]
    return out
