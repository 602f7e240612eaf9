"""Counterfactual recourse: the smallest set of actions that lifts the grade by at least one band.

Actions come from the feature specs (``actionable``, ``target_value``, ``action_zh/en``);
features that share an action text form one action and change together. Applying an action moves
each of its features to its target but never makes it worse: ``min(value, target)`` when a
higher value is riskier (direction +1), ``max(value, target)`` when lower is riskier (-1).
A missing value (source not authorized) cannot be acted on and stays missing.

Search: actions that raise the score are combined in subsets of growing size (1, 2, …); the first
size at which some subset reaches the next better grade wins, ties broken by the smallest total
normalized change (``|Δ| / scale`` per feature, ``scale`` = training standard deviation, 1 if
unknown). "Smallest change" therefore means *fewest actions, then least movement*. If even all
actions together do not reach the next grade the answer is "none within reach"; an enterprise
already in the best grade gets "already at the top grade".

For the scorecard the score is additive over features, so the gain of each action is computed
once per decision and subsets are summed (microseconds). For the GBM every subset is evaluated
with one batched prediction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_ACTIONS = 12
"""Cap on the number of improving actions considered (2^12 subsets at most)."""

NONE_WITHIN_REACH_ZH = "在可采取的改进措施范围内，无法提升一个信用等级"
NONE_WITHIN_REACH_EN = "None within reach: no combination of available actions lifts the grade"
TOP_GRADE_ZH = "已处于最高信用等级"
TOP_GRADE_EN = "Already at the top grade"


@dataclass(frozen=True)
class Action:
    """One thing an enterprise can do, changing one or more features."""

    key: str
    text_zh: str
    text_en: str
    features: tuple[str, ...]
    targets: tuple[float, ...]
    directions: tuple[int, ...]

    def apply(self, row: Mapping[str, Any]) -> dict[str, float]:
        """New values of this action's features for ``row`` (missing stays missing)."""
        out = {}
        for name, target, direction in zip(
            self.features, self.targets, self.directions, strict=True
        ):
            v = row.get(name)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            x = float(v)
            new = min(x, target) if direction > 0 else max(x, target)
            if new != x:
                out[name] = new
        return out


@dataclass(frozen=True)
class Change:
    feature: str
    from_value: float
    to_value: float


@dataclass
class Counterfactual:
    reachable: bool
    current_grade: str
    target_grade: str | None
    actions: list[Action] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    new_score: float | None = None
    new_pd: float | None = None
    text_zh: str = ""
    text_en: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "current_grade": self.current_grade,
            "target_grade": self.target_grade,
            "actions": [
                {"key": a.key, "text_zh": a.text_zh, "text_en": a.text_en} for a in self.actions
            ],
            "changes": [
                {"feature": c.feature, "from": c.from_value, "to": c.to_value} for c in self.changes
            ],
            "new_score": self.new_score,
            "new_pd": self.new_pd,
            "text_zh": self.text_zh,
            "text_en": self.text_en,
        }


def actions_from_specs(specs: Sequence[Mapping[str, Any]]) -> list[Action]:
    """Group actionable specs by their action text; specs are dicts with FeatureSpec fields."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for spec in specs:
        if not spec.get("actionable") or spec.get("target_value") is None:
            continue
        direction = int(spec.get("risk_direction") or 0)
        if direction == 0:
            continue
        key = (
            str(spec.get("action_zh") or spec["name"]),
            str(spec.get("action_en") or spec["name"]),
        )
        groups.setdefault(key, []).append(spec)
    return [
        Action(
            key=members[0]["name"],
            text_zh=zh,
            text_en=en,
            features=tuple(str(m["name"]) for m in members),
            targets=tuple(float(m["target_value"]) for m in members),
            directions=tuple(int(m["risk_direction"]) for m in members),
        )
        for (zh, en), members in groups.items()
    ]


def _describe(actions: Sequence[Action], target_grade: str) -> tuple[str, str]:
    zh = "；".join(a.text_zh for a in actions)
    en = "; ".join(a.text_en for a in actions)
    return (
        f"{zh}，可提升至 {target_grade} 级",
        f"{en} — would lift the grade to {target_grade}",
    )


def search(
    row: Mapping[str, Any],
    actions: Sequence[Action],
    *,
    current_grade: str,
    target_grade: str | None,
    threshold_score: float,
    scale: Mapping[str, float],
    subset_scores: Callable[[Sequence[Sequence[int]], Sequence[dict[str, float]]], Sequence[float]],
    pd_from_score: Callable[[float], float],
) -> Counterfactual:
    """Find the smallest set of actions whose new score exceeds ``threshold_score``.

    ``subset_scores(subsets, changes)`` returns the score after applying each subset; a subset
    is a list of indices into ``actions`` and ``changes[i]`` the feature changes of action ``i``.
    """
    if target_grade is None:
        return Counterfactual(
            False, current_grade, None, text_zh=TOP_GRADE_ZH, text_en=TOP_GRADE_EN
        )
    changes = [a.apply(row) for a in actions]
    candidates = [i for i, c in enumerate(changes) if c][:MAX_ACTIONS]
    cand_changes = [changes[i] for i in candidates]
    cost = [
        sum(abs(new - float(row[f])) / (scale.get(f) or 1.0) for f, new in c.items())
        for c in cand_changes
    ]
    for size in range(1, len(candidates) + 1):
        subsets = list(itertools.combinations(range(len(candidates)), size))
        scores = subset_scores([[candidates[i] for i in s] for s in subsets], changes)
        best: tuple[float, int] | None = None
        for idx, new_score in enumerate(scores):
            if new_score > threshold_score:
                key = (sum(cost[i] for i in subsets[idx]), idx)
                if best is None or key < best:
                    best = key
        if best is None:
            continue
        subset = subsets[best[1]]
        new_score = float(scores[best[1]])
        chosen = [actions[candidates[i]] for i in subset]
        moved = [
            Change(f, float(row[f]), new) for i in subset for f, new in cand_changes[i].items()
        ]
        zh, en = _describe(chosen, target_grade)
        return Counterfactual(
            True, current_grade, target_grade, chosen, moved, new_score,
            pd_from_score(new_score), zh, en,
        )  # fmt: skip
    return Counterfactual(
        False,
        current_grade,
        target_grade,
        text_zh=NONE_WITHIN_REACH_ZH,
        text_en=NONE_WITHIN_REACH_EN,
    )


def additive_subset_scores(
    current_score: float, gains: Sequence[float]
) -> Callable[[Sequence[Sequence[int]], Sequence[dict[str, float]]], list[float]]:
    """Subset scorer for additive models (the scorecard): current score + sum of action gains."""

    def score(
        subsets: Sequence[Sequence[int]], _changes: Sequence[dict[str, float]]
    ) -> list[float]:
        return [current_score + sum(gains[i] for i in s) for s in subsets]

    return score
