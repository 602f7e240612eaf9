"""Scorecard and GBM: estimator contract, monotonicity, table scoring, calibration, artifacts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from ml.artifacts import ArtifactError, RiskModel, generic_specs, load_model, save_model
from ml.calibration import expected_calibration_error, fit_platt
from ml.gbm import GBMModel
from ml.grades import GradeScale, GradeTableError, load_grade_scale
from ml.scorecard import Scorecard
from ml.tabular import FeatureSetError
from ml.validation import monotonicity_check, reference_profile

MONOTONE = {"debt": "ascending", "income": "descending", "hump": "ascending"}


def make_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Known-truth data: debt raises risk, income lowers it, ``hump`` is U-shaped (so a
    constraint must override the data), ``sector`` is categorical, ``noise`` is noise."""
    rng = np.random.default_rng(seed)
    debt = rng.gamma(2.0, 1.0, n)
    income = rng.normal(0, 1, n)
    hump = rng.uniform(-2, 2, n)
    sector = rng.choice(["agri", "manu", "retail", "tech"], n)
    noise = rng.normal(size=n)
    logit = -3.3 + 0.6 * debt - 0.7 * income + 0.4 * hump**2 + np.where(sector == "retail", 0.6, 0)
    pd_true = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < pd_true).astype(int)
    X = pd.DataFrame(
        {"debt": debt, "income": income, "hump": hump, "sector": sector, "noise": noise}
    )
    X.loc[rng.random(n) < 0.08, "income"] = np.nan
    X.loc[rng.random(n) < 0.03, "sector"] = None
    return X, y, pd_true


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    return make_data(6000, 1)


@pytest.fixture(scope="module")
def holdout() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    return make_data(12000, 2)


@pytest.fixture(scope="module")
def scorecard(data) -> Scorecard:
    X, y, _ = data
    return Scorecard(monotone=MONOTONE).fit(X, y)


@pytest.fixture(scope="module")
def gbm(data) -> GBMModel:
    X, y, _ = data
    return GBMModel(monotone=MONOTONE, n_estimators=150).fit(X, y)


# --------------------------------------------------------------------- estimator contract
# The full scikit-learn check suite applies: both estimators are binary-only (tag
# multi_class=False, so the multiclass checks verify the "Only binary" error instead), accept
# NaN (allow_nan) and are checked on numeric arrays; categorical input is tested below.
@parametrize_with_checks([Scorecard(), GBMModel(n_estimators=20)])
def test_sklearn_estimator_contract(estimator, check) -> None:
    check(estimator)


def test_predict_before_fit_raises() -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        Scorecard().predict_proba(np.zeros((2, 2)))
    with pytest.raises(NotFittedError):
        GBMModel().predict_proba(np.zeros((2, 2)))


def test_single_class_target_is_refused(data) -> None:
    X, _, _ = data
    with pytest.raises(ValueError, match="two classes"):
        Scorecard().fit(X, np.zeros(len(X)))


# --------------------------------------------------------------------- discrimination / calibration
@pytest.mark.parametrize("kind", ["scorecard", "gbm"])
def test_models_rank_and_calibrate_on_unseen_data(kind, scorecard, gbm, holdout) -> None:
    model = scorecard if kind == "scorecard" else gbm
    X, y, pd_true = holdout
    p = model.predict_proba(X)[:, 1]
    oracle = roc_auc_score(y, pd_true)
    assert roc_auc_score(y, p) > 0.95 * oracle
    # ~24 % event rate and 1,200 rows per decile: sampling noise alone gives ECE ≈ 0.01
    assert expected_calibration_error(y, p) < 0.02
    assert abs(p.mean() - y.mean()) < 0.01


def test_platt_recovers_a_known_map() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 200_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))).astype(int)
    m = fit_platt(z, y)
    assert m.slope == pytest.approx(0.5, abs=0.02)
    assert m.intercept == pytest.approx(-1.0, abs=0.03)


# --------------------------------------------------------------------- monotonicity
def test_scorecard_points_follow_the_declared_trend(scorecard) -> None:
    table = scorecard.points_table()
    for feature, trend in MONOTONE.items():
        regular = table[(table.feature == feature) & table.label.str.startswith("[")]
        pts = regular.sort_values("bin").points.to_numpy()
        assert len(pts) >= 2, feature
        steps = np.diff(pts)
        # ascending event rate → points never rise with the value; descending → never fall
        assert (steps <= 1e-9).all() if trend == "ascending" else (steps >= -1e-9).all(), feature


@pytest.mark.parametrize("kind", ["scorecard", "gbm"])
def test_ice_monotonicity_holds_even_for_a_u_shaped_feature(kind, scorecard, gbm, data) -> None:
    model = scorecard if kind == "scorecard" else gbm
    X, _, _ = data
    result = monotonicity_check(model, X, MONOTONE, n_rows=100)
    assert set(result) == set(MONOTONE)
    assert all(r["ok"] and r["violations"] == 0 for r in result.values()), result


def test_monotonicity_check_detects_a_violation(data) -> None:
    X, y, _ = data
    free = GBMModel(n_estimators=80, calibration="none").fit(X, y)  # unconstrained: U shape
    result = monotonicity_check(free, X, {"hump": "ascending"}, n_rows=100)
    assert result["hump"]["violations"] > 0 and not result["hump"]["ok"]


# --------------------------------------------------------------------- table scoring
def _lookup(table: pd.DataFrame, X: pd.DataFrame, feature: str, column: str) -> np.ndarray:
    """Per-row value of ``column`` of the points-table row each value of ``feature`` falls in,
    found with pandas comparisons on the exported bounds/categories (not the model's code)."""
    values = X[feature]
    out = np.full(len(X), np.nan)
    for _, r in table[table.feature == feature].iterrows():
        if r.label == "Missing":
            mask = values.isna().to_numpy()
        elif r.label == "Unseen":
            continue
        elif r.categories:
            mask = values.isin(r.categories.split(" | ")).to_numpy()
        else:
            v = values.to_numpy(dtype=float)
            mask = (v >= r.lower) & (v < r.upper)
        out[mask] = r[column]
    assert not np.isnan(out).any(), feature
    return out


def test_points_table_scoring_equals_predict_proba(scorecard, holdout) -> None:
    X = holdout[0].iloc[:5000]
    table = scorecard.points_table()
    features = list(dict.fromkeys(table.feature))
    assert features == scorecard.used_features_
    total = sum(_lookup(table, X, f, "points") for f in features)
    np.testing.assert_allclose(total, scorecard.credit_score(X), rtol=0, atol=1e-9)
    pd_table = 1 / (1 + np.exp((total - scorecard.offset_) / scorecard.factor_))
    np.testing.assert_allclose(pd_table, scorecard.predict_proba(X)[:, 1], rtol=1e-12)
    # the logistic path: calibrated(intercept + sum coef * WoE) gives the same PD
    z = scorecard.intercept_ + sum(
        c * _lookup(table, X, f, "woe")
        for f, c in zip(scorecard.used_features_, scorecard.coef_, strict=True)
    )
    np.testing.assert_allclose(scorecard.calibration_.pd(z), pd_table, rtol=1e-9)


def test_pdo_scaling(scorecard) -> None:
    # base_odds 50:1 good:bad at 600 points; 20 more points double the odds
    p600 = scorecard.pd_from_score(600.0)
    p620 = scorecard.pd_from_score(620.0)
    assert (1 - p600) / p600 == pytest.approx(50.0)
    assert (1 - p620) / p620 == pytest.approx(100.0)
    assert scorecard.score_from_pd(p620) == pytest.approx(620.0)


def test_single_row_scorer_matches_batch(scorecard, holdout) -> None:
    X, _, _ = holdout
    single = scorecard.prepare_single()
    batch = scorecard.credit_score(X.iloc[:300])
    for i, row in enumerate(X.iloc[:300].to_dict("records")):
        assert single.score(row)[0] == pytest.approx(batch[i], abs=1e-9)


def test_score_matrix_fast_path_matches(scorecard) -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(1000, 3)), columns=["a", "b", "c"])
    y = (rng.random(1000) < 1 / (1 + np.exp(2 - X.a))).astype(int)
    model = Scorecard().fit(X, y)
    np.testing.assert_allclose(model.score_matrix(X.to_numpy()), model.credit_score(X))
    with pytest.raises(ValueError, match="all-numeric"):
        scorecard.score_matrix(np.zeros((2, 5)))


def test_unseen_category_and_missing_are_scored(scorecard) -> None:
    X = pd.DataFrame(
        {"debt": [1.0], "income": [np.nan], "hump": [0.0], "sector": ["mining"], "noise": [0.0]}
    )
    assert np.isfinite(scorecard.predict_proba(X)).all()


def test_numeric_text_garbage_names_the_column(scorecard) -> None:
    X = pd.DataFrame(
        {
            "debt": ["1.0", "oops"],
            "income": [0, 0],
            "hump": [0, 0],
            "sector": ["a", "b"],
            "noise": [0, 0],
        }
    )
    with pytest.raises(ValueError, match=r"'debt'.*'oops'"):
        scorecard.predict_proba(X)


# --------------------------------------------------------------------- grades
def test_grade_bands_come_from_the_data_file() -> None:
    scale = load_grade_scale()
    assert 8 <= len(scale.bands) <= 10
    first, second = scale.bands[0], scale.bands[1]
    assert scale.grade(0.0) == first.grade
    assert scale.grade(first.pd_max) == second.grade  # upper bound exclusive
    assert scale.grade(1.0) == scale.bands[-1].grade
    assert list(scale.grade_many([0.0, 0.999])) == [first.grade, scale.bands[-1].grade]


def test_grade_table_with_a_gap_is_refused() -> None:
    text = "grade,pd_min,pd_max,label_zh,label_en\nA,0,0.1,a,a\nB,0.2,1,b,b\n"
    with pytest.raises(GradeTableError, match="contiguous"):
        GradeScale.from_csv_text(text)


# --------------------------------------------------------------------- artifacts
def _risk_model(est, X) -> RiskModel:
    return RiskModel(
        est,
        load_grade_scale(),
        generic_specs(list(X.columns), MONOTONE),
        reference_profile(X, est.credit_score(X)),
    )


@pytest.mark.parametrize("kind", ["scorecard", "gbm"])
def test_artifact_roundtrip_preserves_predictions(kind, scorecard, gbm, data, tmp_path) -> None:
    est = scorecard if kind == "scorecard" else gbm
    X, _, _ = data
    manifest = save_model(_risk_model(est, X), tmp_path / "m")
    assert set(manifest["libraries"]) >= {
        "scikit-learn",
        "lightgbm",
        "optbinning",
        "numpy",
        "pandas",
    }
    assert manifest["features"] == list(X.columns)
    assert len(manifest["content_hash"]) == 64
    loaded = load_model(tmp_path / "m", trusted_base=tmp_path, expected_features=list(X.columns))
    assert loaded.kind == kind
    np.testing.assert_allclose(loaded.predict(X)["pd"], est.predict_proba(X)[:, 1], rtol=1e-12)
    assert not any(p.suffix in {".pkl", ".pickle", ".joblib"} for p in (tmp_path / "m").iterdir())


@pytest.fixture()
def saved(scorecard, data, tmp_path) -> Path:
    X, _, _ = data
    save_model(_risk_model(scorecard, X), tmp_path / "store" / "m")
    return tmp_path / "store" / "m"


def test_artifact_refuses_a_mismatched_feature_set(saved) -> None:
    base = saved.parent
    expected = ["debt", "income", "hump", "sector", "turnover"]
    with pytest.raises(FeatureSetError) as err:
        load_model(saved, trusted_base=base, expected_features=expected)
    message = str(err.value)
    assert "lacks column(s) the model needs: noise" in message
    assert "not trained on: turnover" in message


def test_artifact_refuses_a_tampered_file(saved) -> None:
    path = saved / "estimator.json"
    state = json.loads(path.read_text())
    state["intercept"] += 1.0
    path.write_text(json.dumps(state))
    with pytest.raises(ArtifactError, match=r"estimator\.json: sha256 does not match"):
        load_model(saved, trusted_base=saved.parent)


def test_artifact_refuses_an_edited_manifest(saved) -> None:
    path = saved / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"]["estimator.json"] = "0" * 64
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="content hash"):
        load_model(saved, trusted_base=saved.parent)


def test_artifact_refuses_a_path_outside_the_trusted_base(saved, tmp_path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    with pytest.raises(ArtifactError, match="outside the trusted directory"):
        load_model(saved, trusted_base=other)
    with pytest.raises(ArtifactError, match="outside the trusted directory"):
        load_model(other / ".." / "store" / "m", trusted_base=other)


def test_artifact_refuses_a_symlink_escaping_the_base(saved, tmp_path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text((saved / "reference.json").read_text())
    (saved / "reference.json").unlink()
    os.symlink(outside, saved / "reference.json")
    with pytest.raises(ArtifactError, match="links outside"):
        load_model(saved, trusted_base=saved.parent)
    link = saved.parent / "link"
    os.symlink(tmp_path, link)
    with pytest.raises(ArtifactError, match="outside the trusted directory"):
        load_model(link / "store" / "m", trusted_base=saved.parent)
