"""Matching enterprises with published products, every rule explained.

The arithmetic is in :mod:`app.services.matching_engine` (vectorized); this module loads
the facts and rules from the database and turns pass/fail into sentences: the rule, the
enterprise's value, the threshold, and what would change the result.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from app.services import authorization, profiles, workdays
from app.services.matching_engine import (
    PUBLIC_CLASSES,
    RULES,
    SIZE_CLASSES,
    EnterpriseFacts,
    ProductRules,
    bitmask,
    evaluate,
    expected_rate,
)
from app.services.products import grades
from models import Authorization, AuthorizationKind, Enterprise, LoanProduct, db
from models.authorization import SCOPES
from models.base import utcnow

SCOPE_LABELS = authorization.SCOPE_LABELS
SIZE_LABELS = {
    "micro": _l("Micro"),
    "small": _l("Small"),
    "medium": _l("Medium"),
    "large": _l("Large"),
}


class HasRules(Protocol):
    """Anything holding eligibility rules in LoanProduct's columns (products, policies)."""

    @property
    def id(self) -> int: ...
    @property
    def min_grade(self) -> str | None: ...
    @property
    def public_credit_classes(self) -> str: ...
    @property
    def min_years_operating(self) -> Decimal | None: ...
    @property
    def min_annual_sales(self) -> Decimal | None: ...
    @property
    def min_tax_months(self) -> int | None: ...
    @property
    def min_social_months(self) -> int | None: ...
    @property
    def industries_allowed(self) -> str: ...
    @property
    def industries_excluded(self) -> str: ...
    @property
    def regions_allowed(self) -> str: ...
    @property
    def regions_excluded(self) -> str: ...
    @property
    def size_classes(self) -> str: ...
    @property
    def required_scopes(self) -> str: ...


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def rules_of(products: Sequence[HasRules]) -> ProductRules:
    names = grades()
    split = LoanProduct.split
    return ProductRules(
        ids=np.asarray([p.id for p in products], dtype=np.int64),
        min_grade_rank=np.asarray(
            [names.index(p.min_grade) if p.min_grade in names else math.nan for p in products],
            dtype=float,
        ),
        public_mask=np.asarray(
            [bitmask(split(p.public_credit_classes), PUBLIC_CLASSES) for p in products],
            dtype=np.int64,
        ),
        min_years=np.asarray([_nan(p.min_years_operating) for p in products], dtype=float),
        min_sales=np.asarray([_nan(p.min_annual_sales) for p in products], dtype=float),
        min_tax_months=np.asarray([_nan(p.min_tax_months) for p in products], dtype=float),
        min_social_months=np.asarray([_nan(p.min_social_months) for p in products], dtype=float),
        industries_allowed=[split(p.industries_allowed) for p in products],
        industries_excluded=[split(p.industries_excluded) for p in products],
        regions_allowed=[split(p.regions_allowed) for p in products],
        regions_excluded=[split(p.regions_excluded) for p in products],
        size_mask=np.asarray(
            [bitmask(split(p.size_classes), SIZE_CLASSES) for p in products], dtype=np.int64
        ),
        scopes_mask=np.asarray(
            [bitmask(split(p.required_scopes), SCOPES) for p in products], dtype=np.int64
        ),
    )


def _live_collection(now: dt.datetime) -> list[sa.ColumnElement[bool]]:
    return [
        Authorization.kind == AuthorizationKind.COLLECTION,
        Authorization.revoked_at.is_(None),
        Authorization.paused_at.is_(None),
        Authorization.valid_from <= now,
        Authorization.valid_until > now,
    ]


_IN_CHUNK = 5000
"""Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters a statement,
PostgreSQL 65,535)."""


def _collection_scopes(enterprise_ids: Sequence[int], now: dt.datetime) -> dict[int, int]:
    """Bitmask of scopes each enterprise has a live collection grant for."""
    masks: dict[int, int] = {}
    for start in range(0, len(enterprise_ids), _IN_CHUNK):
        rows = db.session.execute(
            sa.select(Authorization.enterprise_id, Authorization.scopes).where(
                Authorization.enterprise_id.in_(enterprise_ids[start : start + _IN_CHUNK]),
                *_live_collection(now),
            )
        )
        for enterprise_id, scopes in rows:
            masks[enterprise_id] = masks.get(enterprise_id, 0) | scopes_mask(scopes)
    return masks


def scopes_mask(scopes: str | None) -> int:
    """The bitmask of comma-separated scope names (repeats and unknown names ignored)."""
    return bitmask(scopes.split(","), SCOPES) if scopes else 0


def collection_scopes_column(enterprise_id: Any, now: Any) -> Any:
    """A correlated SQL column: the scopes of ``enterprise_id``'s live collection grants,
    comma-joined (NULL when none) — :func:`_collection_scopes` inside another SELECT.
    ``now`` is a datetime or a bound parameter."""
    return (
        sa.select(sa.func.aggregate_strings(Authorization.scopes, ","))
        .where(Authorization.enterprise_id == enterprise_id, *_live_collection(now))
        .scalar_subquery()
    )


PROFILE_FACTS = (
    "grade_rank",
    "public_credit_class",
    "annual_sales",
    "tax_months",
    "social_months",
)


def profile_facts(enterprise_ids: Sequence[int]) -> dict[int, Mapping[str, Any]]:
    """The latest credit profile's matching facts per enterprise (none yet → empty); reads
    only these columns, not the snapshots' features and reasons."""
    return {
        row[0]: dict(zip(PROFILE_FACTS, row[1:], strict=True))
        for row in profiles.latest_columns(enterprise_ids, PROFILE_FACTS)
    }


def facts_of(enterprises: Sequence[Any], now: dt.datetime | None = None) -> EnterpriseFacts:
    """The matching facts of ``enterprises``: :class:`Enterprise` objects, or rows with their
    ``id``, ``founded_on``, ``industry_code``, ``region_code`` and ``size_class``."""
    now = now or utcnow()
    ids = [e.id for e in enterprises]
    return facts_from(enterprises, _collection_scopes(ids, now), profile_facts(ids), now)


def facts_from(
    enterprises: Sequence[Any],
    scopes: Mapping[int, int],
    profiles: Mapping[int, Mapping[str, Any]],
    now: dt.datetime,
) -> EnterpriseFacts:
    """:func:`facts_of` from what the caller has read already: each enterprise's collection
    scopes bitmask and its latest profile's :data:`PROFILE_FACTS` (absent → not known)."""
    ids = [e.id for e in enterprises]
    none: Mapping[str, Any] = {}
    facts = [profiles.get(i, none) for i in ids]
    return facts_from_columns(
        ids,
        [e.founded_on for e in enterprises],
        [e.industry_code for e in enterprises],
        [e.region_code for e in enterprises],
        [e.size_class for e in enterprises],
        [scopes.get(i, 0) for i in ids],
        {name: [f.get(name) for f in facts] for name in PROFILE_FACTS},
        now,
    )


_PUBLIC_INDEX = {c: i for i, c in enumerate(PUBLIC_CLASSES)}
_SIZE_INDEX = {c: i for i, c in enumerate(SIZE_CLASSES)}


def facts_from_columns(
    ids: Sequence[int],
    founded_on: Sequence[dt.date],
    industry: Sequence[str],
    region: Sequence[str],
    size_class: Sequence[Any],
    scopes_mask: Sequence[int],
    profile: Mapping[str, Sequence[Any]],
    now: dt.datetime,
) -> EnterpriseFacts:
    """The matching facts of enterprises given column by column (one entry per enterprise,
    in the same order): size classes as enums, collection scopes as bitmasks, and
    ``profile`` the latest profile's :data:`PROFILE_FACTS` by name, None where not known.

    Column-wise so that a list of a hundred thousand prospects is not converted fact by
    fact in Python: numpy converts a column (None → NaN, Decimal → float) at once."""
    today = np.datetime64(workdays.local_date(now), "D")
    return EnterpriseFacts(
        ids=np.asarray(ids, dtype=np.int64),
        grade_rank=np.asarray(profile["grade_rank"], dtype=float),
        public_class=np.asarray(
            [_PUBLIC_INDEX.get(c, -1) for c in profile["public_credit_class"]], dtype=np.int64
        ),
        years_operating=(today - np.asarray(founded_on, dtype="datetime64[D]")).astype(float)
        / 365.25,
        annual_sales=np.asarray(profile["annual_sales"], dtype=float),
        tax_months=np.asarray(profile["tax_months"], dtype=float),
        social_months=np.asarray(profile["social_months"], dtype=float),
        industry=list(industry),
        region=list(region),
        size_class=np.asarray([_SIZE_INDEX[s.value] for s in size_class], dtype=np.int64),
        scopes_mask=np.asarray(scopes_mask, dtype=np.int64),
    )


# Explanations ------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    requirement: Any  # the threshold, in words
    value: Any  # the enterprise's value, in words
    remedy: Any = None  # what would change it, when the rule failed


@dataclass
class Match:
    product: LoanProduct
    eligible: bool
    results: list[RuleResult] = field(default_factory=list)
    expected_rate: Decimal | None = None
    fit: float = 0.0

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    @property
    def near_miss(self) -> bool:
        return not self.eligible and len(self.failed) == 1


def _money_wan(value: float) -> str:
    return f"{value / 10_000:,.0f}"


def _explain_rule(
    rule: str, product: HasRules, facts: EnterpriseFacts, passed: bool
) -> RuleResult | None:
    """The sentence for one rule of one product, or None when the product sets no such rule."""
    names = grades()
    split = LoanProduct.split
    unknown = _l("not known yet")
    if rule == "grade":
        if not product.min_grade:
            return None
        rank = facts.grade_rank[0]
        value = names[int(rank)] if not math.isnan(rank) else _l("no credit profile yet")
        return RuleResult(
            rule,
            passed,
            _l("grade %(g)s or better", g=product.min_grade),
            value,
            None
            if passed
            else _l("Improve your grade: see the credit-health simulator on your profile."),
        )
    if rule == "public_credit_class":
        classes = split(product.public_credit_classes)
        if not classes:
            return None
        own = facts.public_class[0]
        return RuleResult(
            rule,
            passed,
            _l("public-credit class %(c)s", c=" / ".join(classes)),
            PUBLIC_CLASSES[own] if own >= 0 else unknown,
            None
            if passed
            else _l("Records that are repaired can stop counting: apply for credit repair."),
        )
    if rule == "years_operating":
        if product.min_years_operating is None:
            return None
        return RuleResult(
            rule,
            passed,
            _l("at least %(n)s years in business", n=product.min_years_operating),
            f"{facts.years_operating[0]:.1f}",
            None,
        )
    if rule == "annual_sales":
        if product.min_annual_sales is None:
            return None
        sales = facts.annual_sales[0]
        return RuleResult(
            rule,
            passed,
            _l(
                "declared sales of at least %(n)s ten-thousand CNY a year (tax data)",
                n=_money_wan(float(product.min_annual_sales)),
            ),
            _money_wan(sales) if not math.isnan(sales) else _l("no tax data"),
            None
            if passed or not math.isnan(sales)
            else _l("Authorize collection of your tax data."),
        )
    if rule in ("tax_months", "social_months"):
        minimum = product.min_tax_months if rule == "tax_months" else product.min_social_months
        if minimum is None:
            return None
        months = (facts.tax_months if rule == "tax_months" else facts.social_months)[0]
        scope = "tax" if rule == "tax_months" else "social_insurance"
        requirement = (
            _l("at least %(n)d continuous months of tax payments", n=minimum)
            if rule == "tax_months"
            else _l("at least %(n)d continuous months of social-insurance payments", n=minimum)
        )
        remedy = None
        if not passed:
            remedy = (
                _l("Authorize collection of %(s)s data.", s=SCOPE_LABELS[scope])
                if math.isnan(months)
                else _l("%(n)d more months of on-time payments.", n=int(minimum - months))
            )
        return RuleResult(
            rule, passed, requirement, int(months) if not math.isnan(months) else unknown, remedy
        )
    if rule == "industry":
        allowed, excluded = split(product.industries_allowed), split(product.industries_excluded)
        if not allowed and not excluded:
            return None
        requirement = (
            _l("industry %(codes)s", codes=", ".join(allowed))
            if allowed
            else _l("any industry except %(codes)s", codes=", ".join(excluded))
        )
        return RuleResult(rule, passed, requirement, facts.industry[0], None)
    if rule == "region":
        allowed, excluded = split(product.regions_allowed), split(product.regions_excluded)
        if not allowed and not excluded:
            return None
        requirement = (
            _l("registered in %(codes)s", codes=", ".join(allowed))
            if allowed
            else _l("not registered in %(codes)s", codes=", ".join(excluded))
        )
        return RuleResult(rule, passed, requirement, facts.region[0], None)
    if rule == "size_class":
        sizes = split(product.size_classes)
        if not sizes:
            return None
        return RuleResult(
            rule,
            passed,
            _l("size %(s)s", s=" / ".join(str(SIZE_LABELS[s]) for s in sizes)),
            SIZE_LABELS[SIZE_CLASSES[facts.size_class[0]]],
            None,
        )
    if rule == "scopes":
        required = split(product.required_scopes)
        if not required:
            return None
        have = [s for i, s in enumerate(SCOPES) if facts.scopes_mask[0] & (1 << i)]
        missing = [s for s in required if s not in have]
        return RuleResult(
            rule,
            passed,
            _l("authorized data: %(s)s", s="、".join(str(SCOPE_LABELS[s]) for s in required)),
            "、".join(str(SCOPE_LABELS[s]) for s in have) or _l("none"),
            _l(
                "Authorize collection of %(s)s data.",
                s="、".join(str(SCOPE_LABELS[s]) for s in missing),
            )
            if missing
            else None,
        )
    raise ValueError(f"unknown rule {rule!r}")


def explain_rules(holder: HasRules, facts: EnterpriseFacts, passed: Any) -> list[RuleResult]:
    """The sentences for the rules ``holder`` sets (``passed``: one bool per RULES entry)."""
    return [
        r
        for k, rule in enumerate(RULES)
        if (r := _explain_rule(rule, holder, facts, bool(passed[k]))) is not None
    ]


def explain(
    enterprise: Enterprise, products: Sequence[LoanProduct], now: dt.datetime | None = None
) -> list[Match]:
    """Every product for one enterprise: eligible or not, each rule explained, ranked.

    Eligible products come first, by fit (grade margin, then expected rate); then near
    misses (one rule failed), then the rest.
    """
    if not products:
        return []
    facts = facts_of([enterprise], now)
    rules = rules_of(products)
    passed = evaluate(facts, rules)[0]  # [product, rule]
    worst = rules.min_grade_rank
    rates = expected_rate(
        facts.grade_rank,
        np.asarray([float(p.rate_min) for p in products]),
        np.asarray([float(p.rate_max) for p in products]),
        worst,
    )[0]
    matches = []
    n_grades = len(grades())
    for j, product in enumerate(products):
        results = explain_rules(product, facts, passed[j])
        eligible = bool(passed[j].all())
        margin = 0.0
        if eligible and not math.isnan(worst[j]) and not math.isnan(facts.grade_rank[0]):
            margin = (worst[j] - facts.grade_rank[0]) / n_grades
        rate = (
            Decimal(str(round(float(rates[j]), 2))) if not math.isnan(facts.grade_rank[0]) else None
        )
        fit = (
            (1.0 if eligible else 0.0)
            + 0.5 * margin
            - 0.02 * float(rate if rate is not None else product.rate_max)
        )
        matches.append(Match(product, eligible, results, rate, fit))
    matches.sort(key=lambda m: (not m.eligible, not m.near_miss, -m.fit, m.product.id))
    return matches
