"""Validation report: discrimination, calibration, stability, segments, monotonicity.

Definitions (PD = predicted 12-month probability of default, y = 1 for default):

* ``auc``: ROC AUC of PD vs y; ``gini = 2 * auc - 1``; ``ks``: max |TPR − FPR| over thresholds.
* ``brier``: mean (PD − y)²; ``ece``: expected calibration error over 10 equal-frequency PD bins
  (:func:`ml.calibration.expected_calibration_error`).
* ``calibration``: per PD decile n, defaults, mean PD, observed default rate.
* PSI: ``sum (a − e) * ln(a / e)`` over the training population's decile bins of each numeric
  feature (plus a missing bin), over the training categories (plus "other" and missing) of each
  categorical feature, and over the training score deciles; shares are floored at 1e-4.
  Rule of thumb: < 0.1 stable, 0.1–0.25 watch, > 0.25 shifted.
* Segments: the metrics above by ``industry``/``region``/``size_class`` (whichever columns are
  given), segments with fewer than 30 rows pooled as "other".
* Monotonicity: for every constrained feature, individual conditional expectation curves — a
  sample of rows with the feature swept over its training quantiles — must move PD only in the
  declared direction (tolerance 1e-12); violations are counted.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from ml.calibration import expected_calibration_error
from ml.scorecard import trend_sign

FloatArray = npt.NDArray[np.float64]
SEGMENT_COLUMNS = ("industry", "region", "size_class")
MIN_SEGMENT = 30
PSI_FLOOR = 1e-4
PSI_SHIFTED = 0.25
"""PSI above which a variable counts as shifted (flagged in the HTML report)."""


class ProbaModel(Protocol):
    def predict_proba(self, X: Any) -> FloatArray: ...


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def metrics(y: npt.ArrayLike, pd_: npt.ArrayLike) -> dict[str, Any]:
    """Discrimination and calibration metrics; AUC-type values are None with one class."""
    yy = np.asarray(y, dtype=np.int64)
    pp = np.asarray(pd_, dtype=np.float64)
    out: dict[str, Any] = {
        "n": len(yy),
        "n_events": int(yy.sum()),
        "event_rate": float(yy.mean()) if len(yy) else None,
        "mean_pd": float(pp.mean()) if len(pp) else None,
        "brier": float(brier_score_loss(yy, pp)) if len(yy) else None,
        "ece": expected_calibration_error(yy, pp) if len(yy) else None,
        "auc": None,
        "gini": None,
        "ks": None,
    }
    if 0 < yy.sum() < len(yy):
        auc = float(roc_auc_score(yy, pp))
        fpr, tpr, _ = roc_curve(yy, pp)
        out.update(auc=auc, gini=2 * auc - 1, ks=float(np.max(np.abs(tpr - fpr))))
    return out


def calibration_table(
    y: npt.ArrayLike, pd_: npt.ArrayLike, n_bins: int = 10
) -> list[dict[str, Any]]:
    yy = np.asarray(y, dtype=np.float64)
    pp = np.asarray(pd_, dtype=np.float64)
    order = np.argsort(pp, kind="stable")
    rows = []
    for k, chunk in enumerate(np.array_split(order, min(n_bins, max(len(order), 1)))):
        if len(chunk) == 0:
            continue
        rows.append(
            {
                "decile": k + 1,
                "n": len(chunk),
                "defaults": int(yy[chunk].sum()),
                "mean_pd": float(pp[chunk].mean()),
                "observed_rate": float(yy[chunk].mean()),
                "pd_min": float(pp[chunk].min()),
                "pd_max": float(pp[chunk].max()),
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# Population stability
# ---------------------------------------------------------------------------------------------
def _numeric_profile(values: FloatArray) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    if present.size == 0:
        edges: list[float] = []
    else:
        qs = np.quantile(present, np.linspace(0.1, 0.9, 9))
        edges = sorted({float(q) for q in qs})
    shares = _numeric_shares(edges, values)
    return {
        "kind": "numeric",
        "edges": edges,
        "shares": shares,
        "mean": float(present.mean()) if present.size else None,
        "std": float(present.std()) if present.size else None,
    }


def _numeric_shares(edges: Sequence[float], values: FloatArray) -> list[float]:
    slots = np.searchsorted(
        np.append(np.asarray(edges, dtype=np.float64), np.nan), values, side="right"
    )
    counts = np.bincount(slots, minlength=len(edges) + 2)
    return [float(c) for c in counts / max(len(values), 1)]


def _categorical_profile(values: pd.Series) -> dict[str, Any]:
    counts = values.astype(object).where(values.notna(), None).value_counts(dropna=True)
    top = [str(c) for c in counts.index[:30]]
    return {"kind": "categorical", "categories": top, "shares": _categorical_shares(top, values)}


def _categorical_shares(categories: Sequence[str], values: pd.Series) -> list[float]:
    text = values.astype(object).where(values.notna(), None)
    n = max(len(text), 1)
    missing = int(text.isna().sum())
    mapped = text.dropna().map(lambda v: str(v))
    counts = mapped.value_counts()
    known = [int(counts.get(c, 0)) for c in categories]
    other = len(mapped) - sum(known)
    return [c / n for c in [*known, other, missing]]


def reference_profile(X: pd.DataFrame, score: npt.ArrayLike) -> dict[str, Any]:
    """Training-population profile (bins and shares) to compute PSI against later."""
    features: dict[str, Any] = {}
    for col in X.columns:
        s = X[col]
        if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            features[str(col)] = _numeric_profile(s.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            features[str(col)] = _categorical_profile(s)
    return {
        "n": len(X),
        "features": features,
        "score": _numeric_profile(np.asarray(score, dtype=np.float64)),
    }


def psi_value(expected: Sequence[float], actual: Sequence[float]) -> float:
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    return float(((a - e) * np.log(a / e)).sum())


def psi(reference: Mapping[str, Any], X: pd.DataFrame, score: npt.ArrayLike) -> dict[str, Any]:
    """PSI of ``X``'s features and ``score`` against a :func:`reference_profile`."""
    out: dict[str, float | None] = {}
    for name, prof in reference["features"].items():
        if name not in X.columns:
            out[name] = None
            continue
        if prof["kind"] == "numeric":
            values = pd.to_numeric(X[name], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            actual = _numeric_shares(prof["edges"], values)
        else:
            actual = _categorical_shares(prof["categories"], X[name])
        out[name] = psi_value(prof["shares"], actual)
    sprof = reference["score"]
    score_psi = psi_value(
        sprof["shares"], _numeric_shares(sprof["edges"], np.asarray(score, dtype=np.float64))
    )
    return {"score": score_psi, "features": out}


# ---------------------------------------------------------------------------------------------
# Segments and monotonicity
# ---------------------------------------------------------------------------------------------
def segment_metrics(
    y: npt.ArrayLike, pd_: npt.ArrayLike, segments: pd.DataFrame | None
) -> dict[str, list[dict[str, Any]]]:
    if segments is None:
        return {}
    yy = np.asarray(y, dtype=np.int64)
    pp = np.asarray(pd_, dtype=np.float64)
    out: dict[str, list[dict[str, Any]]] = {}
    for col in SEGMENT_COLUMNS:
        if col not in segments.columns:
            continue
        labels = segments[col].astype(object).where(segments[col].notna(), "(missing)").astype(str)
        counts = labels.value_counts()
        small = set(counts[counts < MIN_SEGMENT].index)
        labels = labels.where(~labels.isin(small), "other").to_numpy()
        rows = []
        for seg in sorted(set(labels)):
            mask = labels == seg
            m = metrics(yy[mask], pp[mask])
            rows.append(
                {
                    "segment": seg,
                    **{
                        k: m[k]
                        for k in (
                            "n",
                            "n_events",
                            "event_rate",
                            "mean_pd",
                            "auc",
                            "ks",
                            "brier",
                            "ece",
                        )
                    },
                }
            )
        out[col] = rows
    return out


def monotonicity_check(
    model: ProbaModel,
    X: pd.DataFrame,
    monotone: Mapping[str, object],
    *,
    n_rows: int = 200,
    n_grid: int = 20,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """ICE-based check that PD moves only in the declared direction for each constrained feature."""
    rng = np.random.default_rng(seed)
    sample = X.iloc[rng.choice(len(X), size=min(n_rows, len(X)), replace=False)].reset_index(
        drop=True
    )
    out: dict[str, dict[str, Any]] = {}
    for name, trend in monotone.items():
        sign = trend_sign(trend)
        if sign == 0 or name not in X.columns:
            continue
        values = pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            out[name] = {
                "expected": "ascending" if sign > 0 else "descending",
                "rows": 0,
                "violations": 0,
                "ok": True,
            }
            continue
        grid = np.unique(np.quantile(values, np.linspace(0, 1, n_grid)))
        big = sample.loc[sample.index.repeat(len(grid))].reset_index(drop=True)
        big[name] = np.tile(grid, len(sample))
        pd_ = model.predict_proba(big)[:, 1].reshape(len(sample), len(grid))
        steps = np.diff(pd_, axis=1) * sign
        bad_rows = int((steps < -1e-12).any(axis=1).sum())
        out[name] = {
            "expected": "ascending" if sign > 0 else "descending",
            "rows": len(sample),
            "grid_points": len(grid),
            "violations": bad_rows,
            "worst_step": float(steps.min()) * sign if steps.size else 0.0,
            "ok": bad_rows == 0,
        }
    return out


# ---------------------------------------------------------------------------------------------
# Full report
# ---------------------------------------------------------------------------------------------
def population_report(
    y: npt.ArrayLike, pd_: npt.ArrayLike, segments: pd.DataFrame | None
) -> dict[str, Any]:
    return {
        **metrics(y, pd_),
        "calibration": calibration_table(y, pd_),
        "segments": segment_metrics(y, pd_, segments),
    }


def validation_report(
    *,
    y_train: npt.ArrayLike,
    pd_train: npt.ArrayLike,
    y_test: npt.ArrayLike,
    pd_test: npt.ArrayLike,
    X_test: pd.DataFrame,
    score_test: npt.ArrayLike,
    reference: Mapping[str, Any],
    monotonicity: Mapping[str, Any],
    segments_train: pd.DataFrame | None = None,
    segments_test: pd.DataFrame | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict: ``train`` and ``test`` populations, ``psi`` (test vs training) and
    ``monotonicity``; ``extra`` keys (model kind, CV results, …) are merged at the top."""
    return {
        **(dict(extra) if extra else {}),
        "train": population_report(y_train, pd_train, segments_train),
        "test": population_report(y_test, pd_test, segments_test),
        "psi": psi(reference, X_test, score_test),
        "monotonicity": dict(monotonicity),
    }


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if v is None:
        return "—"
    return html.escape(str(v))


def _table(
    rows: Sequence[Mapping[str, Any]], flag: Callable[[Mapping[str, Any]], bool] | None = None
) -> str:
    """HTML table; rows for which ``flag`` is true are marked ``class="bad"``."""
    if not rows:
        return "<p>—</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        ("<tr class='bad'>" if flag is not None and flag(r) else "<tr>")
        + "".join(f"<td>{_cell(v)}</td>" for v in r.values())
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_html(report: Mapping[str, Any], title: str = "Model validation report") -> str:
    """A self-contained readable HTML rendering of :func:`validation_report`'s dict."""
    keys = ("n", "n_events", "event_rate", "mean_pd", "auc", "gini", "ks", "brier", "ece")
    summary = [
        {"population": pop, **{k: report[pop].get(k) for k in keys}}
        for pop in ("train", "test")
        if pop in report
    ]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;"
        "padding:.2em .6em;text-align:right}th{background:#f3f3f3}"
        ".bad{color:#b00}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    top = {k: v for k, v in report.items() if not isinstance(v, (dict, list))}
    if top:
        parts.append("<h2>Model</h2>" + _table([top]))
    parts.append("<h2>Discrimination and calibration</h2>" + _table(summary))
    for pop in ("train", "test"):
        if pop in report:
            parts.append(
                f"<h2>Calibration by decile — {pop}</h2>" + _table(report[pop]["calibration"])
            )
    if "psi" in report:
        psi_rows = [{"variable": "score", "psi": report["psi"]["score"]}] + [
            {"variable": k, "psi": v} for k, v in report["psi"]["features"].items()
        ]
        parts.append(
            "<h2>Population stability (hold-out vs training)</h2>"
            + _table(psi_rows, lambda r: (r["psi"] or 0.0) > PSI_SHIFTED)
        )
    mono = report.get("monotonicity") or {}
    if mono:
        rows = [{"feature": k, **v} for k, v in mono.items()]
        parts.append(
            "<h2>Monotonicity of constrained features</h2>"
            + _table(rows, lambda r: not r.get("ok", True))
        )
    for pop in ("train", "test"):
        for seg, rows in (report.get(pop, {}).get("segments") or {}).items():
            parts.append(f"<h2>By {html.escape(seg)} — {pop}</h2>" + _table(rows))
    parts.append("</body></html>")
    return "\n".join(parts)


def clean_for_json(obj: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python ones, recursively."""
    if isinstance(obj, Mapping):
        return {str(k): clean_for_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_for_json(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return _num(obj)
    return obj
