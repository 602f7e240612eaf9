"""LightGBM challenger with monotone constraints, calibrated to PD, same interface as the scorecard.

* ``monotone`` maps feature → ``"ascending"``/``"descending"``/±1 (direction of the PD as the
  value grows), passed to LightGBM as ``monotone_constraints`` (method ``"advanced"``).
* Categorical columns are coded to integers learned in ``fit`` (unseen → missing) and declared as
  LightGBM categorical features; they are never constrained.
* Calibration: Platt on cross-fitted raw margins (see :mod:`ml.calibration`), so the calibrated
  log-odds is ``slope * margin + intercept``. Scores use the same PDO scaling as the scorecard.
* Contributions (``pred_contrib=True``, TreeSHAP) are scaled by the calibration slope and by
  ``-factor`` so they are in score points and sum (with the base) to the score exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from ml.calibration import PlattMap, fit_platt
from ml.scorecard import _json_params, _plain, trend_sign
from ml.tabular import (
    NUMERIC,
    as_frame,
    binary_target,
    categorical_column,
    column_kinds,
    numeric_column,
)

FloatArray = npt.NDArray[np.float64]


class GBMModel(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees (LightGBM) with monotone constraints and Platt calibration.

    Parameters mirror LightGBM's (``n_estimators`` boosting rounds, ``learning_rate``,
    ``num_leaves``, ``min_child_samples`` — capped at 5 % of the rows so tiny data still splits —,
    ``reg_lambda``, ``subsample``, ``colsample``, ``n_jobs`` threads), plus ``monotone``,
    ``categorical``, ``calibration`` (``"platt"``/``"none"``), ``calibration_cv`` and the PDO
    scaling (``base_score``, ``base_odds``, ``pdo``) shared with :class:`ml.scorecard.Scorecard`.
    """

    def __init__(
        self,
        monotone: Mapping[str, object] | None = None,
        categorical: Sequence[str] | None = None,
        n_estimators: int = 400,
        learning_rate: float = 0.03,
        num_leaves: int = 15,
        min_child_samples: int = 100,
        reg_lambda: float = 5.0,
        subsample: float = 0.8,
        colsample: float = 0.8,
        calibration: str = "platt",
        calibration_cv: int = 3,
        base_score: float = 600.0,
        base_odds: float = 50.0,
        pdo: float = 20.0,
        random_state: int | None = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.monotone = monotone
        self.categorical = categorical
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample = colsample
        self.calibration = calibration
        self.calibration_cv = calibration_cv
        self.base_score = base_score
        self.base_odds = base_odds
        self.pdo = pdo
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_class = False
        return tags

    @property
    def factor_(self) -> float:
        return float(self.pdo) / math.log(2.0)

    @property
    def offset_(self) -> float:
        return float(self.base_score) - self.factor_ * math.log(float(self.base_odds))

    # -- data ---------------------------------------------------------------------------------
    def _matrix(self, frame: pd.DataFrame) -> FloatArray:
        cols = []
        for name, kind in self.feature_kinds_.items():
            if kind == NUMERIC:
                cols.append(numeric_column(frame, name))
            else:
                codes = self.category_codes_[name]
                values = pd.Series(categorical_column(frame, name), dtype=object)
                cols.append(values.map(codes).to_numpy(dtype=np.float64, na_value=np.nan))
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0))

    def _params(self, n_rows: int) -> dict[str, Any]:
        monotone = {str(k): trend_sign(v) for k, v in (self.monotone or {}).items()}
        constraints = [
            monotone.get(name, 0) if kind == NUMERIC else 0
            for name, kind in self.feature_kinds_.items()
        ]
        params: dict[str, Any] = {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": max(1, min(self.min_child_samples, n_rows // 20)),
            "lambda_l2": self.reg_lambda,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1 else 0,
            "feature_fraction": self.colsample,
            "seed": 0 if self.random_state is None else int(self.random_state),
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self._threads(n_rows),
            "verbose": -1,
            "min_data_per_group": 20,
            "cat_smooth": 10.0,
        }
        if any(constraints):
            params["monotone_constraints"] = constraints
            params["monotone_constraints_method"] = "advanced"
        return params

    def _threads(self, n_rows: int) -> int:
        """``n_jobs`` if set; else 1 thread below 50,000 rows (OpenMP start-up and spinning cost
        more than they save there, and oversubscribed cores stall LightGBM), else up to 4."""
        if self.n_jobs is not None:
            return int(self.n_jobs)
        return 1 if n_rows < 50_000 else max(1, min(os.cpu_count() or 1, 4))

    def _train(self, M: FloatArray, y: npt.NDArray[np.int64]) -> lgb.Booster:
        cat_idx = [i for i, k in enumerate(self.feature_kinds_.values()) if k != NUMERIC]
        names = [f"f{i}" for i in range(M.shape[1])]
        data = lgb.Dataset(
            M,
            label=y,
            feature_name=names,
            categorical_feature=cat_idx,
            params={"verbose": -1, "max_bin": 255},
            free_raw_data=True,
        )
        return lgb.train(self._params(len(y)), data, num_boost_round=self.n_estimators)

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> GBMModel:
        """Fit the booster and its calibration. Raises ``ValueError`` unless y is binary."""
        if self.calibration not in ("platt", "none"):
            raise ValueError("calibration must be 'platt' or 'none'")
        for trend in (self.monotone or {}).values():
            trend_sign(trend)
        frame = as_frame(self, X, reset=True)
        classes, yy = binary_target(self, y, len(frame))
        self.classes_ = classes
        self.feature_kinds_ = column_kinds(frame, self.categorical)
        self.category_codes_ = {
            name: {
                c: i
                for i, c in enumerate(
                    sorted({v for v in categorical_column(frame, name) if v is not None})
                )
            }
            for name, kind in self.feature_kinds_.items()
            if kind != NUMERIC
        }
        M = self._matrix(frame)
        self.booster_ = self._train(M, yy)
        platt = PlattMap()
        if self.calibration == "platt" and min(yy.sum(), len(yy) - yy.sum()) >= self.calibration_cv:
            oof = np.zeros(len(yy))
            folds = StratifiedKFold(
                self.calibration_cv, shuffle=True, random_state=self.random_state
            )
            for tr, te in folds.split(M, yy):
                booster = self._train(M[tr], yy[tr])
                oof[te] = booster.predict(M[te], raw_score=True, num_threads=self._threads(len(te)))
            try:
                platt = fit_platt(oof, yy)
            except ValueError:
                platt = PlattMap()
        self.calibration_ = platt
        return self

    # -- scoring ------------------------------------------------------------------------------
    @property
    def feature_names_(self) -> list[str]:
        check_is_fitted(self)
        return list(self.feature_kinds_)

    def matrix(self, X: Any) -> FloatArray:
        """Validated model matrix (categoricals coded) for ``X``."""
        check_is_fitted(self)
        return self._matrix(as_frame(self, X, reset=False))

    def decision_function(self, X: Any) -> FloatArray:
        """Calibrated log-odds of the event."""
        check_is_fitted(self)
        M = self.matrix(X)
        raw = self.booster_.predict(M, raw_score=True, num_threads=self._threads(len(M)))
        raw = np.asarray(raw, dtype=np.float64)
        return self.calibration_.logit(raw)

    def predict_proba(self, X: Any) -> FloatArray:
        check_is_fitted(self)
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> npt.NDArray[Any]:
        check_is_fitted(self)
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def credit_score(self, X: Any) -> FloatArray:
        """PDO-scaled credit score per row (same scaling as the scorecard); higher is safer."""
        return self.offset_ - self.factor_ * self.decision_function(X)

    def pd_from_score(self, score: npt.ArrayLike) -> FloatArray:
        s = np.asarray(score, dtype=np.float64)
        return 1.0 / (1.0 + np.exp((s - self.offset_) / self.factor_))

    def score_from_pd(self, pd_: npt.ArrayLike) -> FloatArray:
        p = np.clip(np.asarray(pd_, dtype=np.float64), 1e-15, 1 - 1e-15)
        return self.offset_ + self.factor_ * np.log((1 - p) / p)

    def row_matrix(self, row: Mapping[str, Any]) -> FloatArray:
        """One-row model matrix straight from a ``feature → value`` mapping (missing key or
        None/NaN = missing; unseen category = missing). Raises ``ValueError`` for text in a
        numeric feature. The fast path for single decisions (no pandas)."""
        check_is_fitted(self)
        out = np.full((1, len(self.feature_kinds_)), np.nan)
        for j, (name, kind) in enumerate(self.feature_kinds_.items()):
            v = row.get(name)
            if v is None or (isinstance(v, float) and v != v):
                continue
            if kind == NUMERIC:
                try:
                    out[0, j] = float(v)
                except (TypeError, ValueError):
                    raise ValueError(f"feature {name!r} must be numeric; got {v!r}") from None
            else:
                text = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
                code = self.category_codes_[name].get(text)
                if code is not None:
                    out[0, j] = code
        return out

    def point_contributions(self, X: Any) -> tuple[FloatArray, FloatArray]:
        """Per-feature contributions in score points, shape ``(n, n_features)``, and the base
        points per row; ``base + contributions.sum(1)`` equals :meth:`credit_score`."""
        check_is_fitted(self)
        return self.matrix_contributions(self.matrix(X))

    def matrix_contributions(self, M: FloatArray) -> tuple[FloatArray, FloatArray]:
        """:meth:`point_contributions` for an already-built model matrix."""
        contrib = np.asarray(
            self.booster_.predict(M, pred_contrib=True, num_threads=self._threads(len(M))),
            dtype=np.float64,
        )
        a, b = self.calibration_.slope, self.calibration_.intercept
        pts = -self.factor_ * a * contrib[:, :-1]
        base = self.offset_ - self.factor_ * (a * contrib[:, -1] + b)
        return pts, base

    # -- persistence --------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """JSON-serializable state except the booster (saved with LightGBM's text format)."""
        check_is_fitted(self)
        return {
            "params": _json_params(self.get_params()),
            "classes": [_plain(c) for c in self.classes_],
            "feature_kinds": self.feature_kinds_,
            "feature_names_in": list(getattr(self, "feature_names_in_", [])),
            "category_codes": self.category_codes_,
            "calibration": self.calibration_.to_dict(),
        }

    def booster_text(self) -> str:
        check_is_fitted(self)
        return str(self.booster_.model_to_string())

    @classmethod
    def from_state(cls, state: Mapping[str, Any], booster_text: str) -> GBMModel:
        model = cls(**state["params"])
        model.classes_ = np.asarray(state["classes"])
        model.feature_kinds_ = dict(state["feature_kinds"])
        if state.get("feature_names_in"):
            model.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
        model.n_features_in_ = len(model.feature_kinds_)
        model.category_codes_ = {
            k: {str(c): int(i) for c, i in v.items()} for k, v in state["category_codes"].items()
        }
        model.calibration_ = PlattMap.from_dict(state["calibration"])
        model.booster_ = lgb.Booster(model_str=booster_text)
        return model
