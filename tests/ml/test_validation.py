"""Validation metrics, PSI, segments and the HTML report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.calibration import expected_calibration_error
from ml.validation import (
    calibration_table,
    metrics,
    monotonicity_check,
    psi,
    reference_profile,
    report_html,
    segment_metrics,
    validation_report,
)


def test_metrics_on_known_cases() -> None:
    y = np.array([0, 0, 0, 1, 1])
    perfect = metrics(y, [0.1, 0.2, 0.3, 0.8, 0.9])
    assert perfect["auc"] == 1.0 and perfect["gini"] == 1.0 and perfect["ks"] == 1.0
    reversed_ = metrics(y, [0.9, 0.8, 0.7, 0.2, 0.1])
    assert reversed_["auc"] == 0.0
    assert metrics(y, [0.5] * 5)["brier"] == pytest.approx(0.25)
    one_class = metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert one_class["auc"] is None and one_class["n"] == 3


def test_ece_is_small_for_calibrated_and_large_for_biased_pd() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 20, 200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.003
    assert expected_calibration_error(y, p * 2) > 0.04


def test_calibration_table_has_ten_deciles() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    rows = calibration_table(y, p)
    assert [r["decile"] for r in rows] == list(range(1, 11))
    assert sum(r["n"] for r in rows) == 1000
    assert rows[0]["mean_pd"] < rows[-1]["mean_pd"]


def test_psi_zero_for_same_population_and_large_for_shift() -> None:
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.normal(size=5000), "c": rng.choice(["x", "y"], 5000)})
    X.loc[:200, "a"] = np.nan
    score = rng.normal(600, 30, 5000)
    ref = reference_profile(X, score)
    same = psi(ref, X, score)
    assert same["score"] == pytest.approx(0.0, abs=1e-12)
    assert same["features"]["a"] == pytest.approx(0.0, abs=1e-12)
    shifted = X.assign(a=X.a + 1.0, c="x")
    moved = psi(ref, shifted, score + 30)
    assert moved["features"]["a"] > 0.25
    assert moved["features"]["c"] > 0.25
    assert moved["score"] > 0.25


def test_segment_metrics_pool_small_segments() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    seg = pd.DataFrame({"industry": rng.choice(["C", "F", "I"], n), "size_class": "micro"})
    seg.loc[:9, "industry"] = "Z"  # 10 rows: pooled into "other"
    p = rng.random(n) * 0.2
    y = (rng.random(n) < p).astype(int)
    out = segment_metrics(y, p, seg)
    assert {r["segment"] for r in out["industry"]} == {"C", "F", "I", "other"}
    assert sum(r["n"] for r in out["industry"]) == n
    assert out["size_class"][0]["n"] == n
    assert "region" not in out


class _Step:
    """A 'model' whose PD falls then rises in x — not monotone."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 0.05 + 0.01 * (X["x"].to_numpy() - 5) ** 2 / 25
        return np.column_stack([1 - p, p])


def test_monotonicity_check_flags_a_non_monotone_model() -> None:
    X = pd.DataFrame({"x": np.linspace(0, 10, 300)})
    result = monotonicity_check(_Step(), X, {"x": "ascending"}, n_rows=20)
    assert result["x"]["violations"] == 20 and result["x"]["ok"] is False


def test_report_dict_and_html() -> None:
    rng = np.random.default_rng(4)
    X = pd.DataFrame({"a": rng.normal(size=800), "industry": rng.choice(["C", "F"], 800)})
    p = 1 / (1 + np.exp(-(X.a.to_numpy() - 3)))
    y = (rng.random(800) < p).astype(int)
    score = 600 - 30 * X.a.to_numpy()
    report = validation_report(
        y_train=y[:500],
        pd_train=p[:500],
        y_test=y[500:],
        pd_test=p[500:],
        X_test=X.iloc[500:],
        score_test=score[500:],
        reference=reference_profile(X.iloc[:500], score[:500]),
        monotonicity={"a": {"expected": "ascending", "violations": 0, "ok": True}},
        segments_train=X.iloc[:500],
        segments_test=X.iloc[500:].reset_index(drop=True),
        extra={"model": "scorecard"},
    )
    for pop in ("train", "test"):
        assert {"auc", "ks", "gini", "brier", "ece", "calibration", "segments"} <= set(report[pop])
    assert report["test"]["n"] == 300 and report["model"] == "scorecard"
    assert set(report["psi"]["features"]) == {"a", "industry"}
    page = report_html(report, "Report <test>")
    assert "<title>Report &lt;test&gt;</title>" in page
    assert "Calibration by decile — test" in page
    assert "Population stability" in page and "By industry — train" in page


def test_html_flags_shifted_and_non_monotone_rows() -> None:
    report = {
        "psi": {"score": 0.01, "features": {"a": 0.4}},
        "monotonicity": {"b": {"expected": "ascending", "violations": 3, "ok": False}},
    }
    page = report_html(report)
    assert page.count("<tr class='bad'>") == 2
