"""Reason codes (exact for the scorecard) and counterfactual recourse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.artifacts import RiskModel
from ml.counterfactual import NONE_WITHIN_REACH_EN, TOP_GRADE_EN, actions_from_specs
from ml.gbm import GBMModel
from ml.grades import load_grade_scale
from ml.reasons import MISSING_ZH
from ml.scorecard import Scorecard
from ml.validation import reference_profile

MONOTONE = {"arrears_months": 1, "late_filings": 1, "sales_log": -1, "continuity": -1}
SPECS = [
    {"name": "arrears_months", "label_zh": "欠税月数", "label_en": "Months with tax arrears",
     "risk_direction": 1, "actionable": True, "target_value": 0.0,
     "action_zh": "结清欠缴税款", "action_en": "Pay off tax arrears"},
    {"name": "late_filings", "label_zh": "逾期申报次数", "label_en": "Late filings",
     "risk_direction": 1, "actionable": True, "target_value": 0.0,
     "action_zh": "按期申报纳税", "action_en": "File on time"},
    {"name": "sales_log", "label_zh": "销售额(对数)", "label_en": "Sales (log)",
     "risk_direction": -1, "actionable": False, "target_value": None,
     "action_zh": "", "action_en": ""},
    {"name": "continuity", "label_zh": "社保连续缴费月数", "label_en": "Continuous SI months",
     "risk_direction": -1, "actionable": True, "target_value": 12.0,
     "action_zh": "连续缴纳社保满12个月", "action_en": "Keep SI contributions continuous"},
]  # fmt: skip


def make_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrears = rng.poisson(0.6, n).astype(float)
    late = rng.poisson(0.8, n).astype(float)
    sales = rng.normal(15, 1.5, n)
    cont = rng.integers(0, 25, n).astype(float)
    cont[rng.random(n) < 0.15] = np.nan  # not authorized
    logit = (
        -2.0 + 0.7 * arrears + 0.4 * late - 0.5 * (sales - 15) - 0.06 * np.nan_to_num(cont, nan=6)
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame(
        {"arrears_months": arrears, "late_filings": late, "sales_log": sales, "continuity": cont}
    )
    return X, y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_data(5000, 7)


def _bundle(est, X) -> RiskModel:
    return RiskModel(est, load_grade_scale(), SPECS, reference_profile(X, est.credit_score(X)))


@pytest.fixture(scope="module")
def sc_model(data) -> RiskModel:
    X, y = data
    return _bundle(Scorecard(monotone=MONOTONE).fit(X, y), X)


@pytest.fixture(scope="module")
def gbm_model(data) -> RiskModel:
    X, y = data
    return _bundle(GBMModel(monotone=MONOTONE, n_estimators=120).fit(X, y), X)


# --------------------------------------------------------------------- reasons
def test_scorecard_losses_add_up_to_points_below_the_best_score(sc_model, data) -> None:
    X, _ = data
    est = sc_model.estimator
    best_total = sum(p.max() for p in est.points_)
    for row in X.iloc[:200].to_dict("records"):
        decision = sc_model.decide(row, counterfactual=False)
        scorer = est.prepare_single()
        _, slots = scorer.score(row)
        losses = [max(p) - p[s] for p, s in zip(scorer.points, slots, strict=True)]
        assert sum(losses) == pytest.approx(best_total - decision.score, abs=1e-9)
        against = [r for r in decision.reasons if r.direction == "against"]
        assert len(against) <= 4
        expected = sorted((x for x in losses if x >= 0.01), reverse=True)[:4]
        assert [r.points for r in against] == pytest.approx(expected, abs=1e-3)


def test_reason_text_is_bilingual_and_names_the_value(sc_model) -> None:
    row = {"arrears_months": 5.0, "late_filings": 0.0, "sales_log": 15.0, "continuity": np.nan}
    reasons = sc_model.decide(row, counterfactual=False).reasons
    first = reasons[0]
    assert first.feature == "arrears_months" and first.direction == "against"
    assert first.text_zh.startswith("欠税月数：5，使评分降低")
    assert first.text_en.startswith("Months with tax arrears: 5 — lowers the score by")
    assert first.value == 5.0
    missing = [r for r in reasons if r.feature == "continuity"]
    if missing:
        assert MISSING_ZH in missing[0].text_zh and missing[0].value is None
    assert sum(r.direction == "for" for r in reasons) <= 1


def test_single_and_batch_reasons_agree(sc_model, data) -> None:
    X, _ = data
    batch = sc_model.explain(X.iloc[:100])
    table = sc_model.score_table(X.iloc[:100])
    for i, row in enumerate(X.iloc[:100].to_dict("records")):
        single = sc_model.decide(row, counterfactual=False)
        assert [(r.feature, r.direction) for r in single.reasons] == [
            (r.feature, r.direction) for r in batch[i]
        ]
        assert single.score == pytest.approx(table["score"].iloc[i])
        assert single.grade == table["grade"].iloc[i]


def test_gbm_contributions_add_up_to_the_score(gbm_model, data) -> None:
    X, _ = data
    est = gbm_model.estimator
    pts, base = est.point_contributions(X.iloc[:500])
    np.testing.assert_allclose(base + pts.sum(axis=1), est.credit_score(X.iloc[:500]), atol=1e-6)
    reasons = gbm_model.explain(X.iloc[:50])
    for i, rs in enumerate(reasons):
        against = [r for r in rs if r.direction == "against"]
        worst = np.sort(np.maximum(-pts[i], 0))[::-1][: len(against)]
        assert [r.points for r in against] == pytest.approx(list(worst), abs=1e-3)


# --------------------------------------------------------------------- counterfactual
def test_actions_group_features_sharing_an_action() -> None:
    specs = [*SPECS, {**SPECS[0], "name": "arrears_ratio"}]
    actions = actions_from_specs(specs)
    pay = next(a for a in actions if a.text_en == "Pay off tax arrears")
    assert pay.features == ("arrears_months", "arrears_ratio")
    assert {a.text_en for a in actions} == {
        "Pay off tax arrears",
        "File on time",
        "Keep SI contributions continuous",
    }


@pytest.mark.parametrize("kind", ["scorecard", "gbm"])
def test_counterfactual_lifts_the_grade_when_applied(kind, sc_model, gbm_model, data) -> None:
    model = sc_model if kind == "scorecard" else gbm_model
    X, _ = data
    grades = model.grades.grades
    reached = 0
    for row in X.iloc[:150].to_dict("records"):
        decision = model.decide(row)
        cf = decision.counterfactual
        assert cf is not None
        if not cf.reachable:
            assert cf.text_en in (NONE_WITHIN_REACH_EN, TOP_GRADE_EN)
            continue
        reached += 1
        changed = dict(row)
        for change in cf.changes:
            assert change.to_value != change.from_value
            changed[change.feature] = change.to_value
        after = model.decide(changed, counterfactual=False)
        assert grades.index(after.grade) <= grades.index(decision.grade) - 1
        assert after.grade == cf.target_grade or grades.index(after.grade) < grades.index(
            cf.target_grade
        )
        assert after.score == pytest.approx(cf.new_score, abs=1e-6)
        # minimal: no single action of a smaller subset would have sufficed
        if len(cf.actions) > 1:
            for action in model.actions:
                alone = dict(row)
                alone.update(action.apply(row))
                single = model.decide(alone, counterfactual=False)
                assert grades.index(single.grade) >= grades.index(decision.grade)
    assert reached >= 20


def test_counterfactual_none_within_reach(sc_model) -> None:
    # every action already done, but sales very low: nothing actionable remains
    row = {"arrears_months": 0.0, "late_filings": 0.0, "sales_log": 9.0, "continuity": 24.0}
    decision = sc_model.decide(row)
    assert decision.grade != sc_model.grades.grades[0]
    cf = decision.counterfactual
    assert cf is not None and not cf.reachable
    assert cf.text_en == NONE_WITHIN_REACH_EN and cf.text_zh


def test_counterfactual_missing_value_cannot_be_acted_on(sc_model) -> None:
    row = {"arrears_months": 0.0, "late_filings": 0.0, "sales_log": 13.0, "continuity": np.nan}
    cf = sc_model.decide(row).counterfactual
    assert cf is not None
    assert all(c.feature != "continuity" for c in cf.changes)


def test_decide_refuses_unknown_features(sc_model) -> None:
    with pytest.raises(ValueError, match="not trained on: turnover"):
        sc_model.decide({"turnover": 1.0})


def test_gbm_single_decision_matches_batch(gbm_model, data) -> None:
    X, _ = data
    X = X.iloc[:50]
    batch = gbm_model.predict(X)
    explained = gbm_model.explain(X)
    for i, row in enumerate(X.to_dict("records")):
        decision = gbm_model.decide(row, counterfactual=False)
        assert decision.pd == pytest.approx(batch["pd"].iloc[i], rel=1e-9)
        assert decision.grade == batch["grade"].iloc[i]
        assert [r.feature for r in decision.reasons] == [r.feature for r in explained[i]]
