"""Eligibility of every enterprise for every product, vectorized (numpy), rule by rule.

Enterprises and products arrive as columns (:class:`EnterpriseFacts`,
:class:`ProductRules`); each rule is evaluated for a block of enterprises against all
products at once, so 100k enterprises × 1,000 products is a few hundred array operations,
not 10⁸ Python comparisons. A missing fact (no tax data, no profile yet) fails any rule
that needs it: eligibility is never assumed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.authorization import SCOPES

RULES: tuple[str, ...] = (
    "grade",
    "public_credit_class",
    "years_operating",
    "annual_sales",
    "tax_months",
    "social_months",
    "industry",
    "region",
    "size_class",
    "scopes",
)
PUBLIC_CLASSES = ("A", "B", "C", "D")
SIZE_CLASSES = ("micro", "small", "medium", "large")

Bool = npt.NDArray[np.bool_]
Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]


def bitmask(values: Sequence[str], universe: Sequence[str]) -> int:
    return sum(1 << universe.index(v) for v in values if v in universe)


@dataclass
class EnterpriseFacts:
    """One entry per enterprise; NaN / -1 mean "not known"."""

    ids: Int
    grade_rank: Float  # 0 = best grade; NaN = no credit profile
    public_class: Int  # index into PUBLIC_CLASSES; -1 unknown
    years_operating: Float
    annual_sales: Float  # CNY over the last 12 months of tax data; NaN = no tax data
    tax_months: Float  # continuous months of tax payment up to now
    social_months: Float
    industry: Sequence[str]  # "C13"
    region: Sequence[str]  # "350102"
    size_class: Int  # index into SIZE_CLASSES
    scopes_mask: Int  # bit i set = data scope SCOPES[i] authorized for collection

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: slice | Int) -> EnterpriseFacts:
        return EnterpriseFacts(
            ids=self.ids[rows],
            grade_rank=self.grade_rank[rows],
            public_class=self.public_class[rows],
            years_operating=self.years_operating[rows],
            annual_sales=self.annual_sales[rows],
            tax_months=self.tax_months[rows],
            social_months=self.social_months[rows],
            industry=self.industry[rows]
            if isinstance(rows, slice)
            else [self.industry[i] for i in rows],
            region=self.region[rows] if isinstance(rows, slice) else [self.region[i] for i in rows],
            size_class=self.size_class[rows],
            scopes_mask=self.scopes_mask[rows],
        )


@dataclass
class ProductRules:
    """One entry per product; NaN / 0 / empty mean "no rule of that kind"."""

    ids: Int
    min_grade_rank: Float
    public_mask: Int
    min_years: Float
    min_sales: Float
    min_tax_months: Float
    min_social_months: Float
    industries_allowed: Sequence[Sequence[str]]  # section letters ("C") or divisions ("C13")
    industries_excluded: Sequence[Sequence[str]]
    regions_allowed: Sequence[Sequence[str]]  # GB/T 2260 prefixes: "35", "3501", "350102"
    regions_excluded: Sequence[Sequence[str]]
    size_mask: Int
    scopes_mask: Int

    def __len__(self) -> int:
        return len(self.ids)


def _code_keys(industry: str) -> tuple[str, ...]:
    return industry[:1], industry[:3]


def _region_keys(region: str) -> tuple[str, ...]:
    return region[:2], region[:4], region[:6]


@dataclass(frozen=True)
class _MembershipTable:
    """Products' code lists as a boolean table [product, code]; column -1 is "no match"."""

    vocab: dict[str, int]
    table: Bool
    has_rule: Bool

    @classmethod
    def build(cls, lists: Sequence[Sequence[str]]) -> _MembershipTable:
        vocab: dict[str, int] = {}
        for items in lists:
            for item in items:
                vocab.setdefault(item, len(vocab))
        table = np.zeros((len(lists), len(vocab) + 1), dtype=bool)
        for p, items in enumerate(lists):
            for item in items:
                table[p, vocab[item]] = True
        return cls(vocab, table, np.asarray(table.any(axis=1), dtype=bool))

    def key_index(self, keys: Sequence[tuple[str, ...]], width: int) -> Int:
        """[enterprise, key level] → column of the table (the "no match" column if absent)."""
        none = len(self.vocab)
        flat = [self.vocab.get(k, none) for ks in keys for k in ks]
        return np.asarray(flat, dtype=np.int64).reshape(len(keys), width)

    def hits(self, index: Int) -> Bool:
        """[enterprise, product]: any of the enterprise's keys is in the product's list."""
        hit = np.zeros((index.shape[0], self.table.shape[0]), dtype=bool)
        for level in range(index.shape[1]):
            hit |= self.table[:, index[:, level]].T
        return hit


@dataclass(frozen=True)
class Prepared:
    """Code lookups resolved once for all enterprises (not once per block)."""

    industry_allowed: _MembershipTable
    industry_excluded: _MembershipTable
    region_allowed: _MembershipTable
    region_excluded: _MembershipTable
    industry_idx: tuple[Int, Int]
    region_idx: tuple[Int, Int]


def prepare(facts: EnterpriseFacts, rules: ProductRules) -> Prepared:
    tables = [
        _MembershipTable.build(lists)
        for lists in (
            rules.industries_allowed,
            rules.industries_excluded,
            rules.regions_allowed,
            rules.regions_excluded,
        )
    ]
    # Looked up once per distinct code (a few hundred industries and regions), then spread
    # to the enterprises by numpy.
    industries, industry_of = _distinct(facts.industry)
    regions, region_of = _distinct(facts.region)
    industry_keys = [_code_keys(code) for code in industries]
    region_keys = [_region_keys(code) for code in regions]
    return Prepared(
        industry_allowed=tables[0],
        industry_excluded=tables[1],
        region_allowed=tables[2],
        region_excluded=tables[3],
        industry_idx=(
            tables[0].key_index(industry_keys, 2)[industry_of],
            tables[1].key_index(industry_keys, 2)[industry_of],
        ),
        region_idx=(
            tables[2].key_index(region_keys, 3)[region_of],
            tables[3].key_index(region_keys, 3)[region_of],
        ),
    )


def _distinct(values: Sequence[str]) -> tuple[list[str], Int]:
    """The distinct values in order of first appearance, and each value's position among
    them."""
    index: dict[str, int] = {}
    positions = [index.setdefault(value, len(index)) for value in values]
    return list(index), np.asarray(positions, dtype=np.int64)


def _at_least(values: Float, thresholds: Float) -> Bool:
    """Pass where no threshold, or the (known) value reaches it."""
    with np.errstate(invalid="ignore"):
        passed: Bool = np.isnan(thresholds)[None, :] | (values[:, None] >= thresholds[None, :])
    return passed


def evaluate(
    facts: EnterpriseFacts,
    rules: ProductRules,
    prepared: Prepared | None = None,
    rows: slice | None = None,
) -> Bool:
    """Pass/fail of every rule: a boolean array [enterprise, product, rule] (RULES order).

    With ``rows``, only that block of enterprises (``prepared`` made for all of them)."""
    prepared = prepared or prepare(facts, rules)
    rows = rows or slice(0, len(facts))
    f = facts.take(rows)
    e, p = len(f), len(rules)
    out = np.empty((e, p, len(RULES)), dtype=bool)
    with np.errstate(invalid="ignore"):
        out[:, :, 0] = np.isnan(rules.min_grade_rank)[None, :] | (
            f.grade_rank[:, None] <= rules.min_grade_rank[None, :]
        )
    class_bit = np.where(f.public_class >= 0, 1 << np.maximum(f.public_class, 0), 0)
    out[:, :, 1] = (rules.public_mask[None, :] == 0) | (
        (class_bit[:, None] & rules.public_mask[None, :]) != 0
    )
    out[:, :, 2] = _at_least(f.years_operating, rules.min_years)
    out[:, :, 3] = _at_least(f.annual_sales, rules.min_sales)
    out[:, :, 4] = _at_least(f.tax_months, rules.min_tax_months)
    out[:, :, 5] = _at_least(f.social_months, rules.min_social_months)
    allowed, excluded = prepared.industry_allowed, prepared.industry_excluded
    out[:, :, 6] = (
        ~allowed.has_rule[None, :] | allowed.hits(prepared.industry_idx[0][rows])
    ) & ~excluded.hits(prepared.industry_idx[1][rows])
    allowed, excluded = prepared.region_allowed, prepared.region_excluded
    out[:, :, 7] = (
        ~allowed.has_rule[None, :] | allowed.hits(prepared.region_idx[0][rows])
    ) & ~excluded.hits(prepared.region_idx[1][rows])
    size_bit = 1 << f.size_class
    out[:, :, 8] = (rules.size_mask[None, :] == 0) | (
        (size_bit[:, None] & rules.size_mask[None, :]) != 0
    )
    out[:, :, 9] = (f.scopes_mask[:, None] & rules.scopes_mask[None, :]) == rules.scopes_mask[
        None, :
    ]
    return out


def eligible_blocks(
    facts: EnterpriseFacts, rules: ProductRules, block: int = 4096
) -> Iterator[tuple[slice, Bool]]:
    """Eligibility [enterprise, product] block by block (memory stays bounded)."""
    prepared = prepare(facts, rules)
    for start in range(0, len(facts), block):
        rows = slice(start, min(start + block, len(facts)))
        yield rows, np.asarray(evaluate(facts, rules, prepared, rows).all(axis=2), dtype=bool)


def eligibility(facts: EnterpriseFacts, rules: ProductRules, block: int = 4096) -> Bool:
    result = np.empty((len(facts), len(rules)), dtype=bool)
    for rows, ok in eligible_blocks(facts, rules, block):
        result[rows] = ok
    return result


def expected_rate(
    grade_rank: Float, rules_min_rate: Float, rules_max_rate: Float, worst_rank: Float
) -> Float:
    """The rate an enterprise can expect within each product's range, by its grade: the best
    grade gets the minimum rate, the product's weakest accepted grade the maximum."""
    span = np.where(np.isnan(worst_rank), 8.0, np.maximum(worst_rank, 1.0))
    position = np.clip(np.nan_to_num(grade_rank, nan=8.0)[:, None] / span[None, :], 0.0, 1.0)
    return rules_min_rate[None, :] + (rules_max_rate - rules_min_rate)[None, :] * position


__all__ = [
    "PUBLIC_CLASSES",
    "RULES",
    "SCOPES",
    "SIZE_CLASSES",
    "EnterpriseFacts",
    "ProductRules",
    "bitmask",
    "eligibility",
    "eligible_blocks",
    "evaluate",
    "expected_rate",
    "prepare",
]
