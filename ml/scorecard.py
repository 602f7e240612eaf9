"""Credit scorecard: optimal binning → weights of evidence → logistic regression → PDO points.

Conventions
-----------
* The positive class (``classes_[1]``) is the *event* (default). ``decision_function`` returns
  the calibrated log-odds of the event; ``predict_proba[:, 1]`` is the calibrated 12-month PD.
* WoE per bin is ``ln((events_k / events) / (non_events_k / non_events))`` — positive means
  riskier than average — so every logistic coefficient must be ≥ 0; features that come out
  negative (collinearity) are dropped and the regression refitted.
* Points: ``score = offset + factor * ln(odds_good)`` with ``factor = pdo / ln 2`` and
  ``offset = base_score - factor * ln(base_odds)`` (``base_odds`` is good:bad, e.g. 50 → 50:1).
  The calibrated linear predictor is split into per-bin points plus the offset spread evenly over
  the features in the model, so a score is exactly the sum of the points of the bins an
  enterprise falls in, and ``PD = 1 / (1 + exp((score - offset) / factor))``.
* Missing values have their own bin per feature (its WoE is learned; 0 when training had none).
  Categories not seen in training fall in an "unseen" bin with WoE 0.
* ``monotone`` maps feature → ``"ascending"`` (event rate rises with the value, i.e. +1) or
  ``"descending"`` (-1); the binning is constrained to that trend and the per-bin WoE projected
  onto it, so points never go the wrong way.

Scoring runs from the points table with numpy only (one ``np.searchsorted`` per feature on the
bin edges, NaN placed last in the edges so it lands in the missing bin).
"""

from __future__ import annotations

import bisect
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from optbinning import OptimalBinning
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from ml.calibration import PlattMap, fit_platt
from ml.tabular import (
    CATEGORICAL,
    NUMERIC,
    as_frame,
    binary_target,
    categorical_column,
    column_kinds,
    numeric_column,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
"""Candidate inverse regularization strengths for ``C="auto"``."""
C_SELECTION_ROWS = 30_000
"""``C="auto"`` is chosen on a stratified sample of at most this many rows."""
ASCENDING = "ascending"
DESCENDING = "descending"
MISSING_LABEL = "Missing"
UNSEEN_LABEL = "Unseen"


def normalize_trend(value: object) -> str | None:
    """``+1``/``"ascending"``/``"increasing"`` → ``"ascending"``; ``-1`` etc. → ``"descending"``;
    ``0``/``None`` → ``None``. Anything else raises ``ValueError``."""
    if value is None or value == 0:
        return None
    if value in (1, "+1", ASCENDING, "increasing", "asc"):
        return ASCENDING
    if value in (-1, "-1", DESCENDING, "decreasing", "desc"):
        return DESCENDING
    raise ValueError(
        f"monotone trend must be 'ascending', 'descending', +1, -1 or 0; got {value!r}"
    )


def trend_sign(value: object) -> int:
    trend = normalize_trend(value)
    return 0 if trend is None else (1 if trend == ASCENDING else -1)


@dataclass
class FeatureBins:
    """Fitted bins of one feature.

    ``edges`` drive scoring: slot = ``searchsorted(edges, value, side="right")``. Numeric: the
    split points followed by NaN (slots ``0..m`` regular, ``m + 1`` missing). Categorical: values
    are first coded to their bin index (unseen → ``K``), edges are ``0.5, …, K - 0.5, NaN``
    (slots ``0..K-1`` regular, ``K`` unseen, ``K + 1`` missing).
    """

    name: str
    kind: str
    splits: list[float]
    categories: list[list[str]]
    woe: FloatArray
    n: npt.NDArray[np.int64]
    n_event: npt.NDArray[np.int64]
    trend: str | None

    @property
    def edges(self) -> FloatArray:
        if self.kind == NUMERIC:
            inner = np.asarray(self.splits, dtype=np.float64)
        else:
            inner = np.arange(len(self.categories), dtype=np.float64) + 0.5
        return np.append(inner, np.nan)

    @property
    def n_slots(self) -> int:
        return len(self.edges) + 1

    @property
    def n_regular(self) -> int:
        return len(self.splits) + 1 if self.kind == NUMERIC else len(self.categories)

    @property
    def missing_slot(self) -> int:
        return self.n_slots - 1

    @property
    def category_codes(self) -> dict[str, int]:
        return {c: k for k, cats in enumerate(self.categories) for c in cats}

    @property
    def iv(self) -> float:
        events = self.n_event.sum()
        non = (self.n - self.n_event).sum()
        if events == 0 or non == 0:
            return 0.0
        share_e = self.n_event / events
        share_n = (self.n - self.n_event) / non
        return float(((share_e - share_n) * self.woe).sum())

    def slot_labels(self) -> list[str]:
        labels: list[str] = []
        if self.kind == NUMERIC:
            bounds = [-math.inf, *self.splits, math.inf]
            for lo, hi in itertools.pairwise(bounds):
                labels.append(f"[{_fmt(lo)}, {_fmt(hi)})")
        else:
            labels.extend(" | ".join(cats) for cats in self.categories)
            labels.append(UNSEEN_LABEL)
        labels.append(MISSING_LABEL)
        return labels

    def bounds(self, slot: int) -> tuple[float, float]:
        """``[lower, upper)`` of a numeric regular slot (NaN, NaN for other slots)."""
        if self.kind != NUMERIC or slot >= self.n_regular:
            return (math.nan, math.nan)
        full = [-math.inf, *self.splits, math.inf]
        return (full[slot], full[slot + 1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "splits": [float(s) for s in self.splits],
            "categories": self.categories,
            "woe": [float(w) for w in self.woe],
            "n": [int(v) for v in self.n],
            "n_event": [int(v) for v in self.n_event],
            "trend": self.trend,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureBins:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            splits=[float(s) for s in data["splits"]],
            categories=[[str(c) for c in cats] for cats in data["categories"]],
            woe=np.asarray(data["woe"], dtype=np.float64),
            n=np.asarray(data["n"], dtype=np.int64),
            n_event=np.asarray(data["n_event"], dtype=np.int64),
            trend=data.get("trend"),
        )


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "-inf" if v < 0 else "inf"
    return f"{v:.6g}"


def _woe(n: npt.NDArray[np.int64], n_event: npt.NDArray[np.int64]) -> FloatArray:
    events = max(int(n_event.sum()), 1)
    non = max(int((n - n_event).sum()), 1)
    e = n_event.astype(np.float64)
    ne = (n - n_event).astype(np.float64)
    smooth = (e == 0) | (ne == 0)
    e = np.where(smooth, e + 0.5, e)
    ne = np.where(smooth, ne + 0.5, ne)
    woe = np.log((e / events) / (ne / non))
    return np.where(n == 0, 0.0, woe)


# ---------------------------------------------------------------------------------------------
# Fitting pieces
# ---------------------------------------------------------------------------------------------
def encode_codes(bins: FeatureBins, values: npt.NDArray[Any]) -> FloatArray:
    """Values → the float array that ``bins.edges`` slices (numeric as is; categories coded)."""
    if bins.kind == NUMERIC:
        return np.asarray(values, dtype=np.float64)
    codes = bins.category_codes
    unseen = float(len(bins.categories))
    series = pd.Series(values, dtype=object)
    coded = series.map(codes).astype(np.float64)
    missing = series.isna().to_numpy()
    out = coded.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    out[np.isnan(out) & ~missing] = unseen
    out[missing] = np.nan
    return out


def fit_feature_bins(
    name: str,
    kind: str,
    values: npt.NDArray[Any],
    y: npt.NDArray[np.int64],
    trend: str | None,
    *,
    default_trend: str,
    max_n_prebins: int,
    min_prebin_size: float,
    min_bin_size: float | None,
    max_n_bins: int | None,
) -> FeatureBins:
    """Optimal binning of one feature (optbinning, CP solver) and its WoE per slot."""
    ob_trend = trend if kind == NUMERIC and trend is not None else default_trend
    splits: list[float] = []
    categories: list[list[str]] = []
    if kind == NUMERIC:
        x = np.asarray(values, dtype=np.float64)
        present = ~np.isnan(x)
        n_distinct = np.unique(x[present]).size if present.any() else 0
    else:
        x = np.asarray(values, dtype=object)
        present = pd.notna(x)
        n_distinct = len(set(x[present])) if present.any() else 0
    if n_distinct >= 2:
        ob = OptimalBinning(
            name=name,
            dtype="numerical" if kind == NUMERIC else "categorical",
            monotonic_trend=ob_trend if kind == NUMERIC else None,
            max_n_prebins=max_n_prebins,
            min_prebin_size=min_prebin_size,
            min_bin_size=min_bin_size,
            max_n_bins=max_n_bins,
            solver="cp",
            time_limit=30,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optbinning's internal pandas/numpy deprecations
            if kind == NUMERIC:
                ob.fit(x, y)
            else:
                ob.fit(np.where(present, x, np.nan).astype(object), y)
        if ob.status in ("OPTIMAL", "FEASIBLE"):
            if kind == NUMERIC:
                splits = [float(s) for s in np.asarray(ob.splits, dtype=np.float64)]
            else:
                categories = [sorted(str(c) for c in list(group)) for group in ob.splits]
        if kind == CATEGORICAL and not categories:
            categories = [sorted({str(c) for c in x[present]})]
    elif kind == CATEGORICAL:
        categories = [sorted({str(c) for c in x[present]})]
    proto = FeatureBins(
        name=name,
        kind=kind,
        splits=splits,
        categories=categories,
        woe=np.zeros(0),
        n=np.zeros(0, dtype=np.int64),
        n_event=np.zeros(0, dtype=np.int64),
        trend=trend if kind == NUMERIC else None,
    )
    slots = np.searchsorted(proto.edges, encode_codes(proto, values), side="right")
    n = np.bincount(slots, minlength=proto.n_slots).astype(np.int64)
    n_event = np.bincount(slots, weights=y, minlength=proto.n_slots).astype(np.int64)
    woe = _woe(n, n_event)
    if proto.trend is not None:
        reg = proto.n_regular
        project = np.maximum.accumulate if proto.trend == ASCENDING else np.minimum.accumulate
        woe[:reg] = project(woe[:reg])
    proto.woe = woe
    proto.n = n
    proto.n_event = n_event
    return proto


@dataclass
class _Core:
    bins: list[FeatureBins]  # every input feature, in input order
    used: list[int]  # indices into bins of features kept by the regression
    coef: FloatArray  # per used feature, ≥ 0
    intercept: float
    C: float

    def raw_logit(self, codes: Sequence[FloatArray]) -> FloatArray:
        """Uncalibrated log-odds of the event from per-feature codes (all features)."""
        z = np.full(len(codes[0]) if codes else 0, self.intercept)
        for c, j in zip(self.coef, self.used, strict=True):
            b = self.bins[j]
            z += c * b.woe[np.searchsorted(b.edges, codes[j], side="right")]
        return z


# ---------------------------------------------------------------------------------------------
# Estimator
# ---------------------------------------------------------------------------------------------
class Scorecard(ClassifierMixin, BaseEstimator):
    """Binned logistic scorecard with PDO-scaled points, calibrated to PD (see module docstring).

    Parameters
    ----------
    monotone : mapping feature → trend (``"ascending"``/``"descending"``/±1) of the event rate.
    categorical : column names to treat as categorical even if numeric (e.g. region codes).
    base_score, base_odds, pdo : points scaling; ``base_odds`` good:bad at ``base_score``.
    default_trend : optbinning ``monotonic_trend`` for numeric features without a constraint.
    max_n_prebins, min_prebin_size, min_bin_size, max_n_bins : optbinning limits.
    min_iv : features with information value below this are left out of the regression.
    C : inverse L2 strength of the logistic regression on WoE, or ``"auto"`` (default): chosen
        from :data:`C_GRID` by 3-fold cross-validated log-loss on the training rows' WoE
        (binning fixed), then used for the final fit and the calibration folds (``C_``).
    calibration : ``"platt"`` (cross-fitted, see :mod:`ml.calibration`) or ``"none"``.
    calibration_cv : folds for the cross-fitted calibration.
    random_state : seed for the calibration folds.
    """

    def __init__(
        self,
        monotone: Mapping[str, object] | None = None,
        categorical: Sequence[str] | None = None,
        base_score: float = 600.0,
        base_odds: float = 50.0,
        pdo: float = 20.0,
        default_trend: str = "auto",
        max_n_prebins: int = 20,
        min_prebin_size: float = 0.05,
        min_bin_size: float | None = None,
        max_n_bins: int | None = None,
        min_iv: float = 0.005,
        C: float | str = "auto",
        calibration: str = "platt",
        calibration_cv: int = 3,
        random_state: int | None = 0,
    ) -> None:
        self.monotone = monotone
        self.categorical = categorical
        self.base_score = base_score
        self.base_odds = base_odds
        self.pdo = pdo
        self.default_trend = default_trend
        self.max_n_prebins = max_n_prebins
        self.min_prebin_size = min_prebin_size
        self.min_bin_size = min_bin_size
        self.max_n_bins = max_n_bins
        self.min_iv = min_iv
        self.C = C
        self.calibration = calibration
        self.calibration_cv = calibration_cv
        self.random_state = random_state

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_class = False
        return tags

    # -- scaling ------------------------------------------------------------------------------
    @property
    def factor_(self) -> float:
        return float(self.pdo) / math.log(2.0)

    @property
    def offset_(self) -> float:
        return float(self.base_score) - self.factor_ * math.log(float(self.base_odds))

    # -- fit ----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if not (self.pdo > 0 and self.base_odds > 0):
            raise ValueError("pdo and base_odds must be positive")
        if self.calibration not in ("platt", "none"):
            raise ValueError("calibration must be 'platt' or 'none'")
        if not (self.C == "auto" or (isinstance(self.C, (int, float)) and self.C > 0)):
            raise ValueError("C must be a positive number or 'auto'")
        if not (isinstance(self.calibration_cv, int) and self.calibration_cv >= 2):
            raise ValueError("calibration_cv must be an integer ≥ 2")
        for trend in (self.monotone or {}).values():
            normalize_trend(trend)

    def _codes_from_frame(
        self, frame: pd.DataFrame, bins: Sequence[FeatureBins]
    ) -> list[FloatArray]:
        out = []
        for b in bins:
            if b.kind == NUMERIC:
                out.append(numeric_column(frame, b.name))
            else:
                out.append(encode_codes(b, categorical_column(frame, b.name)))
        return out

    def _fit_core(
        self,
        columns: Mapping[str, npt.NDArray[Any]],
        kinds: Mapping[str, str],
        y: npt.NDArray[np.int64],
        C: float | None = None,
    ) -> _Core:
        monotone = {str(k): normalize_trend(v) for k, v in (self.monotone or {}).items()}
        bins = [
            fit_feature_bins(
                name,
                kinds[name],
                values,
                y,
                monotone.get(name),
                default_trend=self.default_trend,
                max_n_prebins=self.max_n_prebins,
                min_prebin_size=self.min_prebin_size,
                min_bin_size=self.min_bin_size,
                max_n_bins=self.max_n_bins,
            )
            for name, values in columns.items()
        ]
        woe_cols = [
            b.woe[np.searchsorted(b.edges, encode_codes(b, columns[b.name]), side="right")]
            for b in bins
        ]
        candidates = [j for j, b in enumerate(bins) if b.iv >= self.min_iv and b.iv > 0]
        if C is None:
            C = (
                self._choose_C(np.column_stack([woe_cols[j] for j in candidates]), y)
                if candidates
                else 1.0
            )
        coef = np.zeros(0)
        intercept = float(math.log(max(y.mean(), 1e-12) / max(1 - y.mean(), 1e-12)))
        while candidates:
            W = np.column_stack([woe_cols[j] for j in candidates])
            lr = LogisticRegression(C=C, solver="newton-cholesky", max_iter=200, tol=1e-6)
            lr.fit(W, y)
            coef = lr.coef_[0].astype(np.float64)
            intercept = float(lr.intercept_[0])
            if (coef >= 0).all():
                break
            candidates.pop(int(np.argmin(coef)))
            coef = np.zeros(0)
        return _Core(bins=bins, used=list(candidates), coef=coef, intercept=intercept, C=C)

    def _choose_C(self, W: FloatArray, y: npt.NDArray[np.int64]) -> float:
        """``self.C`` if numeric, else the grid value with the best 3-fold CV log-loss."""
        if self.C != "auto":
            return float(self.C)
        if min(int(y.sum()), int(len(y) - y.sum())) < 6:
            return 1.0
        if len(y) > C_SELECTION_ROWS:  # C barely matters at this size; a sample decides it
            keep, _ = train_test_split(
                np.arange(len(y)), train_size=C_SELECTION_ROWS, stratify=y, random_state=0
            )
            W, y = W[keep], y[keep]
        folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(W, y))
        best_C, best_loss = 1.0, math.inf
        for C in C_GRID:
            loss = 0.0
            for tr, te in folds:
                lr = LogisticRegression(C=C, solver="newton-cholesky", max_iter=200, tol=1e-6)
                p = lr.fit(W[tr], y[tr]).predict_proba(W[te])[:, 1]
                p = np.clip(p, 1e-12, 1 - 1e-12)
                loss -= float((y[te] * np.log(p) + (1 - y[te]) * np.log(1 - p)).sum())
            if loss < best_loss - 1e-9:
                best_C, best_loss = C, loss
        return best_C

    def fit(self, X: Any, y: Any) -> Scorecard:
        """Fit binning, WoE, regression and calibration.

        Raises ``ValueError`` for anything but a binary target, bad parameters, or a numeric
        column with non-numeric text.
        """
        self._check_params()
        frame = as_frame(self, X, reset=True)
        classes, yy = binary_target(self, y, len(frame))
        self.classes_ = classes
        kinds = column_kinds(frame, self.categorical)
        columns: dict[str, npt.NDArray[Any]] = {
            c: numeric_column(frame, c) if k == NUMERIC else categorical_column(frame, c)
            for c, k in kinds.items()
        }
        core = self._fit_core(columns, kinds, yy)
        if self.calibration == "platt" and min(yy.sum(), len(yy) - yy.sum()) >= self.calibration_cv:
            oof = np.zeros(len(yy))
            folds = StratifiedKFold(
                self.calibration_cv, shuffle=True, random_state=self.random_state
            )
            for train_idx, test_idx in folds.split(np.zeros(len(yy)), yy):
                fold_core = self._fit_core(
                    {c: v[train_idx] for c, v in columns.items()}, kinds, yy[train_idx], core.C
                )
                codes = [encode_codes(b, columns[b.name][test_idx]) for b in fold_core.bins]
                oof[test_idx] = fold_core.raw_logit(codes)
            try:
                platt = fit_platt(oof, yy)
            except ValueError:
                platt = PlattMap()
        else:
            platt = PlattMap()
        self.feature_kinds_ = kinds
        self.bins_ = core.bins
        self.used_features_ = [core.bins[j].name for j in core.used]
        self.coef_ = core.coef
        self.intercept_ = core.intercept
        self.C_ = core.C
        self.calibration_ = platt
        self._build_points()
        return self

    def _build_points(self) -> None:
        """Points per slot for the used features (calibrated), and the fast-scoring tables."""
        a, b = self.calibration_.slope, self.calibration_.intercept
        factor, offset = self.factor_, self.offset_
        name_to_bins = {fb.name: fb for fb in self.bins_}
        n_used = len(self.used_features_)
        base = offset - factor * (a * self.intercept_ + b)
        share = base / n_used if n_used else 0.0
        self.base_points_ = 0.0 if n_used else base
        self.points_ = [
            share - factor * a * c * name_to_bins[name].woe
            for name, c in zip(self.used_features_, self.coef_, strict=True)
        ]
        self.edges_ = [name_to_bins[name].edges for name in self.used_features_]
        self.used_bins_ = [name_to_bins[name] for name in self.used_features_]

    # -- scoring ------------------------------------------------------------------------------
    def encode(self, X: Any) -> tuple[int, list[FloatArray]]:
        """Row count and, per used feature, the float codes that the edges slice (validates X)."""
        check_is_fitted(self)
        frame = as_frame(self, X, reset=False)
        return len(frame), self._codes_from_frame(frame, self.used_bins_)

    def slots(self, n: int, codes: Sequence[FloatArray]) -> IntArray:
        """Slot index per row and used feature, shape ``(n, n_used)``."""
        out = np.empty((n, len(self.edges_)), dtype=np.intp)
        for j, edges in enumerate(self.edges_):
            out[:, j] = np.searchsorted(edges, codes[j], side="right")
        return out

    def score_codes(self, n: int, codes: Sequence[FloatArray]) -> FloatArray:
        """Score (points) per row from the ``n`` rows' per-feature codes."""
        total = np.full(n, self.base_points_)
        for edges, pts, c in zip(self.edges_, self.points_, codes, strict=True):
            total += pts[np.searchsorted(edges, c, side="right")]
        return total

    def score_matrix(self, X: npt.NDArray[np.float64]) -> FloatArray:
        """Fast path: score a float matrix whose columns are ``feature_names_`` in order.

        Only for models without categorical features; no validation beyond the shape (this is
        the throughput path — use :meth:`credit_score` for untrusted input).
        """
        check_is_fitted(self)
        if any(b.kind != NUMERIC for b in self.used_bins_):
            raise ValueError("score_matrix needs an all-numeric model; use score()")
        if X.ndim != 2 or X.shape[1] != len(self.feature_names_):
            raise ValueError(f"X must have {len(self.feature_names_)} columns")
        idx = self._used_index
        return self.score_codes(X.shape[0], [X[:, i] for i in idx])

    @property
    def _used_index(self) -> list[int]:
        pos = {n: i for i, n in enumerate(self.feature_names_)}
        return [pos[n] for n in self.used_features_]

    @property
    def feature_names_(self) -> list[str]:
        check_is_fitted(self)
        return [b.name for b in self.bins_]

    def credit_score(self, X: Any) -> FloatArray:
        """PDO-scaled credit score (points) per row; higher is safer."""
        return self.score_codes(*self.encode(X))

    def pd_from_score(self, score: npt.ArrayLike) -> FloatArray:
        s = np.asarray(score, dtype=np.float64)
        return 1.0 / (1.0 + np.exp((s - self.offset_) / self.factor_))

    def score_from_pd(self, pd_: npt.ArrayLike) -> FloatArray:
        p = np.clip(np.asarray(pd_, dtype=np.float64), 1e-15, 1 - 1e-15)
        return self.offset_ + self.factor_ * np.log((1 - p) / p)

    def decision_function(self, X: Any) -> FloatArray:
        """Calibrated log-odds of the event (positive class)."""
        check_is_fitted(self)
        return (self.offset_ - self.credit_score(X)) / self.factor_

    def predict_proba(self, X: Any) -> FloatArray:
        check_is_fitted(self)
        p = self.pd_from_score(self.credit_score(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> npt.NDArray[Any]:
        check_is_fitted(self)
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    # -- single row ---------------------------------------------------------------------------
    def prepare_single(self) -> SingleRowScorer:
        check_is_fitted(self)
        return SingleRowScorer(self)

    # -- exports ------------------------------------------------------------------------------
    def points_table(self) -> pd.DataFrame:
        """One row per (used feature, slot): feature, bin, label, lower, upper, categories,
        count, event_rate, woe, points. Scoring sums ``points`` of the matching rows."""
        check_is_fitted(self)
        rows = []
        for fb, pts in zip(self.used_bins_, self.points_, strict=True):
            labels = fb.slot_labels()
            for slot in range(fb.n_slots):
                lo, hi = fb.bounds(slot)
                cats = (
                    " | ".join(fb.categories[slot])
                    if fb.kind == CATEGORICAL and slot < fb.n_regular
                    else ""
                )
                n = int(fb.n[slot])
                rows.append(
                    {
                        "feature": fb.name,
                        "bin": slot,
                        "label": labels[slot],
                        "lower": lo,
                        "upper": hi,
                        "categories": cats,
                        "count": n,
                        "event_rate": (fb.n_event[slot] / n) if n else math.nan,
                        "woe": float(fb.woe[slot]),
                        "points": float(pts[slot]),
                    }
                )
        return pd.DataFrame(rows)

    def get_state(self) -> dict[str, Any]:
        """JSON-serializable fitted state (no pickles); inverse of :meth:`from_state`."""
        check_is_fitted(self)
        return {
            "params": _json_params(self.get_params()),
            "classes": [_plain(c) for c in self.classes_],
            "feature_kinds": self.feature_kinds_,
            "feature_names_in": list(getattr(self, "feature_names_in_", [])),
            "bins": [b.to_dict() for b in self.bins_],
            "used_features": self.used_features_,
            "coef": [float(c) for c in self.coef_],
            "intercept": self.intercept_,
            "C": self.C_,
            "calibration": self.calibration_.to_dict(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Scorecard:
        model = cls(**state["params"])
        model.classes_ = np.asarray(state["classes"])
        model.feature_kinds_ = dict(state["feature_kinds"])
        if state.get("feature_names_in"):
            model.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
        model.bins_ = [FeatureBins.from_dict(b) for b in state["bins"]]
        model.n_features_in_ = len(model.bins_)
        model.used_features_ = list(state["used_features"])
        model.coef_ = np.asarray(state["coef"], dtype=np.float64)
        model.intercept_ = float(state["intercept"])
        model.C_ = float(state.get("C", 1.0))
        model.calibration_ = PlattMap.from_dict(state["calibration"])
        model._build_points()
        return model


class SingleRowScorer:
    """Microsecond scoring of one enterprise from a mapping ``feature → value``.

    Pure-Python bisect over pre-extracted edge lists; NaN/None → missing bin. Unknown features in
    the mapping are ignored; a missing key counts as a missing value.
    """

    def __init__(self, model: Scorecard) -> None:
        self.model = model
        self.features = list(model.used_features_)
        self.kinds = [b.kind for b in model.used_bins_]
        self.splits: list[list[float]] = [list(map(float, b.edges[:-1])) for b in model.used_bins_]
        self.codes = [b.category_codes for b in model.used_bins_]
        self.n_categories = [len(b.categories) for b in model.used_bins_]
        self.missing = [b.missing_slot for b in model.used_bins_]
        self.points: list[list[float]] = [list(map(float, p)) for p in model.points_]
        self.base = float(model.base_points_)

    def slots(self, row: Mapping[str, Any]) -> list[int]:
        out = []
        for j, name in enumerate(self.features):
            v = row.get(name)
            if v is None or (isinstance(v, float) and v != v):
                out.append(self.missing[j])
            elif self.kinds[j] == NUMERIC:
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    raise ValueError(f"feature {name!r} must be numeric; got {v!r}") from None
                out.append(self.missing[j] if x != x else bisect.bisect_right(self.splits[j], x))
            else:
                key = (
                    v
                    if isinstance(v, str)
                    else str(int(v))
                    if isinstance(v, float) and v.is_integer()
                    else str(v)
                )
                out.append(self.codes[j].get(key, self.n_categories[j]))
        return out

    def score(self, row: Mapping[str, Any]) -> tuple[float, list[int]]:
        slots = self.slots(row)
        total = self.base
        for pts, s in zip(self.points, slots, strict=True):
            total += pts[s]
        return total, slots


def _data_conversion_warning() -> type[Warning]:
    from sklearn.exceptions import DataConversionWarning

    return DataConversionWarning


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, Mapping):
            out[k] = {str(a): _plain(b) for a, b in v.items()}
        elif isinstance(v, (list, tuple)):
            out[k] = [_plain(x) for x in v]
        else:
            out[k] = _plain(v)
    return out
