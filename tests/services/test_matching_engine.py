"""The vectorized matching engine, rule by rule at the boundaries."""

import math

import numpy as np
import pytest

from app.services.matching_engine import (
    PUBLIC_CLASSES,
    RULES,
    SIZE_CLASSES,
    EnterpriseFacts,
    ProductRules,
    bitmask,
    eligibility,
    evaluate,
)
from models.authorization import SCOPES


def facts(**overrides):
    base = {
        "grade_rank": 3.0,
        "public_class": 1,
        "years_operating": 3.0,
        "annual_sales": 2_000_000.0,
        "tax_months": 12.0,
        "social_months": 24.0,
        "industry": "C13",
        "region": "350102",
        "size_class": 1,
        "scopes": ("tax", "social_insurance"),
    }
    base.update(overrides)
    return EnterpriseFacts(
        ids=np.array([1]),
        grade_rank=np.array([base["grade_rank"]]),
        public_class=np.array([base["public_class"]]),
        years_operating=np.array([base["years_operating"]]),
        annual_sales=np.array([base["annual_sales"]]),
        tax_months=np.array([base["tax_months"]]),
        social_months=np.array([base["social_months"]]),
        industry=[base["industry"]],
        region=[base["region"]],
        size_class=np.array([base["size_class"]]),
        scopes_mask=np.array([bitmask(base["scopes"], SCOPES)]),
    )


def rules(**overrides):
    nan = math.nan
    base = {
        "min_grade_rank": 3.0,
        "public": ("A", "B"),
        "min_years": 3.0,
        "min_sales": 2_000_000.0,
        "min_tax": 12.0,
        "min_social": nan,
        "ind_allowed": ("C",),
        "ind_excluded": (),
        "reg_allowed": ("3501",),
        "reg_excluded": (),
        "sizes": ("micro", "small"),
        "scopes": ("tax",),
    }
    base.update(overrides)
    return ProductRules(
        ids=np.array([10]),
        min_grade_rank=np.array([base["min_grade_rank"]]),
        public_mask=np.array([bitmask(base["public"], PUBLIC_CLASSES)]),
        min_years=np.array([base["min_years"]]),
        min_sales=np.array([base["min_sales"]]),
        min_tax_months=np.array([base["min_tax"]]),
        min_social_months=np.array([base["min_social"]]),
        industries_allowed=[list(base["ind_allowed"])],
        industries_excluded=[list(base["ind_excluded"])],
        regions_allowed=[list(base["reg_allowed"])],
        regions_excluded=[list(base["reg_excluded"])],
        size_mask=np.array([bitmask(base["sizes"], SIZE_CLASSES)]),
        scopes_mask=np.array([bitmask(base["scopes"], SCOPES)]),
    )


def failed(f, r):
    passed = evaluate(f, r)[0, 0]
    return [rule for rule, ok in zip(RULES, passed, strict=True) if not ok]


def test_exactly_at_every_threshold_passes():
    assert failed(facts(), rules()) == []


@pytest.mark.parametrize(
    "fact,rule",
    [
        ({"grade_rank": 4.0}, "grade"),
        ({"grade_rank": math.nan}, "grade"),
        ({"public_class": 2}, "public_credit_class"),
        ({"public_class": -1}, "public_credit_class"),
        ({"years_operating": 2.99}, "years_operating"),
        ({"annual_sales": 1_999_999.0}, "annual_sales"),
        ({"annual_sales": math.nan}, "annual_sales"),
        ({"tax_months": 11.0}, "tax_months"),
        ({"industry": "F52"}, "industry"),
        ({"region": "350201"}, "region"),
        ({"size_class": 2}, "size_class"),
        ({"scopes": ("social_insurance",)}, "scopes"),
    ],
)
def test_one_step_past_a_threshold_fails_that_rule_only(fact, rule):
    assert failed(facts(**fact), rules()) == [rule]


def test_no_rule_means_no_requirement_even_without_data():
    open_product = rules(
        min_grade_rank=math.nan,
        public=(),
        min_years=math.nan,
        min_sales=math.nan,
        min_tax=math.nan,
        ind_allowed=(),
        reg_allowed=(),
        sizes=(),
        scopes=(),
    )
    unknown = facts(
        grade_rank=math.nan, public_class=-1, annual_sales=math.nan, tax_months=math.nan, scopes=()
    )
    assert failed(unknown, open_product) == []


def test_exclusions_and_division_level_codes():
    assert failed(facts(industry="C13"), rules(ind_allowed=(), ind_excluded=("C13",))) == [
        "industry"
    ]
    assert failed(facts(industry="C14"), rules(ind_allowed=(), ind_excluded=("C13",))) == []
    assert failed(facts(industry="F51"), rules(ind_allowed=("F51",))) == []
    assert failed(facts(region="350102"), rules(reg_allowed=("35",), reg_excluded=("350102",))) == [
        "region"
    ]


def test_blocks_give_the_same_answer_as_one_pass():
    rng = np.random.default_rng(7)
    n = 1000
    many = EnterpriseFacts(
        ids=np.arange(n),
        grade_rank=rng.integers(0, 9, n).astype(float),
        public_class=rng.integers(-1, 4, n),
        years_operating=rng.uniform(0, 10, n),
        annual_sales=rng.uniform(0, 5e6, n),
        tax_months=rng.integers(0, 36, n).astype(float),
        social_months=rng.integers(0, 36, n).astype(float),
        industry=list(rng.choice(["C13", "F51", "I65"], n)),
        region=list(rng.choice(["350102", "440305"], n)),
        size_class=rng.integers(0, 4, n),
        scopes_mask=rng.integers(0, 16, n),
    )
    r = rules()
    whole = evaluate(many, r).all(axis=2)
    assert np.array_equal(eligibility(many, r, block=64), whole)
    assert 0 < whole.sum() < n
