"""Reason codes: at most four factors against an enterprise and the strongest one in its favour.

All amounts are in **score points** (PDO-scaled, higher score = lower PD).

* Scorecard (exact): a factor *against* is a feature whose bin earns fewer points than that
  feature's best bin; its weight is the points lost, so the losses over all features add up to
  ``max possible score - score`` exactly. The factor *in favour* is the feature whose points are
  furthest above that feature's average points in the training population.
* GBM: per-feature TreeSHAP contributions (``pred_contrib``) scaled to points; *against* are the
  most negative contributions, *in favour* the most positive one. They add up, with the base, to
  the score.

Batch functions are vectorized over rows; :func:`scorecard_reasons_single` is the microsecond
path for one decision.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_AGAINST = 4
MIN_POINTS = 0.01
"""Contributions smaller than this (in points) are not reported as reasons."""

MISSING_ZH = "无数据（未授权或无记录）"
MISSING_EN = "no data (not authorized or no records)"


@dataclass(frozen=True)
class FeatureText:
    label_zh: str
    label_en: str


@dataclass(frozen=True)
class Reason:
    """One reason code. ``direction`` is ``"against"`` or ``"for"``; ``points`` ≥ 0 is the size
    of the effect (points lost for *against*, points gained for *for*)."""

    feature: str
    direction: str
    points: float
    value: float | str | None
    text_zh: str
    text_en: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_value(value: object) -> tuple[str, str]:
    """Human text of a feature value (zh, en); missing → the "no data" wording."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_ZH, MISSING_EN
    if isinstance(value, (int, np.integer)):
        return str(int(value)), str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        text = str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"
        return text, text
    return str(value), str(value)


def make_reason(
    feature: str, direction: str, points: float, value: object, labels: Mapping[str, FeatureText]
) -> Reason:
    text = labels.get(feature) or FeatureText(feature, feature)
    v_zh, v_en = format_value(value)
    pts = abs(float(points))
    if direction == "against":
        zh = f"{text.label_zh}：{v_zh}，使评分降低 {pts:.1f} 分"
        en = f"{text.label_en}: {v_en} — lowers the score by {pts:.1f} points"
    else:
        zh = f"{text.label_zh}：{v_zh}，使评分提高 {pts:.1f} 分"
        en = f"{text.label_en}: {v_en} — raises the score by {pts:.1f} points"
    plain: float | str | None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        plain = None
    elif isinstance(value, (int, float, np.integer, np.floating)):
        plain = float(value)
    else:
        plain = str(value)
    return Reason(feature, direction, round(pts, 4), plain, zh, en)


def _top_against(loss: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.intp]:
    """Column indices of the ``k`` largest losses per row (descending)."""
    k = min(k, loss.shape[1])
    if k == 0:
        return np.zeros((loss.shape[0], 0), dtype=np.intp)
    part = np.argpartition(-loss, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(loss, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def reasons_from_effects(
    features: Sequence[str],
    loss: npt.NDArray[np.float64],
    gain: npt.NDArray[np.float64],
    values: Sequence[Sequence[object]],
    labels: Mapping[str, FeatureText],
    max_against: int = MAX_AGAINST,
) -> list[list[Reason]]:
    """Batch reasons from per-row, per-feature ``loss`` (≥ 0, points below the reference that
    counts as "against") and ``gain`` (points above the reference that counts as "for").

    ``values[j][i]`` is row ``i``'s value of ``features[j]`` (column-major to avoid copies).
    """
    n = loss.shape[0]
    top = _top_against(loss, max_against)
    top_loss = np.take_along_axis(loss, top, axis=1) if top.size else np.zeros((n, 0))
    best_for = np.argmax(gain, axis=1) if gain.shape[1] else np.zeros(n, dtype=np.intp)
    best_gain = gain[np.arange(n), best_for] if gain.shape[1] else np.zeros(n)
    out: list[list[Reason]] = []
    for i in range(n):
        row: list[Reason] = []
        for c, lost in zip(top[i], top_loss[i], strict=True):
            if lost >= MIN_POINTS:
                j = int(c)
                row.append(make_reason(features[j], "against", lost, values[j][i], labels))
        if best_gain[i] >= MIN_POINTS:
            j = int(best_for[i])
            row.append(make_reason(features[j], "for", best_gain[i], values[j][i], labels))
        out.append(row)
    return out


def scorecard_effects(
    slots: npt.NDArray[np.intp],
    points: Sequence[npt.NDArray[np.float64]],
    mean_points: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-row losses vs each feature's best bin and gains vs its training mean, ``(n, k)``."""
    n, k = slots.shape
    pts = np.empty((n, k))
    best = np.empty(k)
    for j, table in enumerate(points):
        pts[:, j] = table[slots[:, j]]
        best[j] = table.max()
    return best - pts, pts - mean_points


def scorecard_reasons_single(
    features: Sequence[str],
    slots: Sequence[int],
    points: Sequence[Sequence[float]],
    best_points: Sequence[float],
    mean_points: Sequence[float],
    row: Mapping[str, object],
    labels: Mapping[str, FeatureText],
    max_against: int = MAX_AGAINST,
) -> list[Reason]:
    """The single-decision path: same result as the batch path for one row, pure Python."""
    losses = []
    best_gain = -math.inf
    best_j = -1
    for j, s in enumerate(slots):
        p = points[j][s]
        losses.append((best_points[j] - p, j))
        g = p - mean_points[j]
        if g > best_gain:
            best_gain, best_j = g, j
    losses.sort(key=lambda t: (-t[0], t[1]))
    out = [
        make_reason(features[j], "against", lost, row.get(features[j]), labels)
        for lost, j in losses[:max_against]
        if lost >= MIN_POINTS
    ]
    if best_j >= 0 and best_gain >= MIN_POINTS:
        out.append(
            make_reason(features[best_j], "for", best_gain, row.get(features[best_j]), labels)
        )
    return out


def reasons_json(reasons: Sequence[Reason]) -> str:
    """Compact machine-readable form for CSV output: feature, direction, points, value."""
    return json.dumps(
        [
            {"feature": r.feature, "direction": r.direction, "points": r.points, "value": r.value}
            for r in reasons
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
