"""Canonical table and column names shared by ``ml`` and the portal's ingestion.

Every source table carries ``provider``, ``batch_id`` and ``version``; a correction is a new row
with the same key (``KEY_COLUMNS``) and a higher ``version`` — nothing is overwritten. Readers keep
the highest version per key.

Value conventions:

* ``uscc``: 18-character unified social credit code (GB 32100-2015, see :mod:`ml.uscc`).
* months / periods: ``"YYYY-MM"`` strings; dates: ISO ``"YYYY-MM-DD"`` strings (empty = none).
* money: CNY, two decimals. ``arrears`` is the amount still owed at the end of the period.
* ``late_filing``: 0/1. ``days_overdue``: days the bill was paid after its due date (0 = on time).
* ``authorized_scopes``: ``";"``-joined subset of :data:`SCOPES` (empty = none authorized).
* ``tax_credit_rating.year`` is the assessed calendar year; the rating is published in April of
  the following year (:data:`RATING_PUBLISHED_MONTH`).
* ``public_credit``: ``severity`` is always one of :data:`SEVERITIES`; a commendation has no
  real severity and carries ``"minor"`` (readers ignore severity for commendations).
  ``publication_ends_on`` is empty for a permanent record (licence revoked); a record counts
  while ``decided_on <= date < publication_ends_on`` and it is not repaired by that date.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

SCOPES: tuple[str, ...] = ("tax", "social_insurance", "utilities", "provident_fund")
"""Data scopes an enterprise can authorize (DESIGN §3 Authorization)."""

ENTERPRISES = "enterprises"
TAX = "tax"
TAX_CREDIT_RATING = "tax_credit_rating"
SOCIAL_INSURANCE = "social_insurance"
UTILITIES = "utilities"
PROVIDENT_FUND = "provident_fund"
PUBLIC_CREDIT = "public_credit"

_RECORD_META: tuple[str, ...] = ("provider", "batch_id", "version")

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    ENTERPRISES: (
        "uscc",
        "name",
        "region_code",
        "industry_code",
        "founded_on",
        "size_class",
        "employees",
        "annual_revenue",
        "authorized_scopes",
    ),
    TAX: (
        "uscc",
        "period",
        "tax_type",
        "amount_paid",
        "declared_sales",
        "late_filing",
        "arrears",
        *_RECORD_META,
    ),
    TAX_CREDIT_RATING: ("uscc", "year", "rating", *_RECORD_META),
    SOCIAL_INSURANCE: (
        "uscc",
        "month",
        "insured_headcount",
        "amount_due",
        "amount_paid",
        "arrears",
        *_RECORD_META,
    ),
    UTILITIES: (
        "uscc",
        "month",
        "utility",
        "consumption",
        "amount_billed",
        "amount_paid",
        "days_overdue",
        *_RECORD_META,
    ),
    PROVIDENT_FUND: (
        "uscc",
        "month",
        "contributing_employees",
        "amount",
        "arrears",
        *_RECORD_META,
    ),
    PUBLIC_CREDIT: (
        "uscc",
        "record_id",
        "record_type",
        "severity",
        "decided_on",
        "publication_ends_on",
        "repaired_on",
        *_RECORD_META,
    ),
}
"""Column order of every table (also the CSV/Parquet file layout: ``<table>.csv``)."""

SOURCE_TABLES: tuple[str, ...] = (
    TAX,
    TAX_CREDIT_RATING,
    SOCIAL_INSURANCE,
    UTILITIES,
    PROVIDENT_FUND,
    PUBLIC_CREDIT,
)

SCOPE_TABLES: dict[str, tuple[str, ...]] = {
    "tax": (TAX, TAX_CREDIT_RATING),
    "social_insurance": (SOCIAL_INSURANCE,),
    "utilities": (UTILITIES,),
    "provident_fund": (PROVIDENT_FUND,),
}
"""Which tables an authorization scope unlocks."""

PUBLIC_TABLES: tuple[str, ...] = (PUBLIC_CREDIT,)
"""Public data: always available, no authorization needed."""

TABLE_SCOPE: dict[str, str | None] = {
    **{table: scope for scope, tables in SCOPE_TABLES.items() for table in tables},
    **dict.fromkeys(PUBLIC_TABLES),
}

KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    ENTERPRISES: ("uscc",),
    TAX: ("uscc", "period", "tax_type"),
    TAX_CREDIT_RATING: ("uscc", "year"),
    SOCIAL_INSURANCE: ("uscc", "month"),
    UTILITIES: ("uscc", "month", "utility"),
    PROVIDENT_FUND: ("uscc", "month"),
    PUBLIC_CREDIT: ("uscc", "record_id"),
}
"""Natural key per table; rows sharing a key are versions of one record."""

PERIOD_COLUMN: dict[str, str] = {
    TAX: "period",
    TAX_CREDIT_RATING: "year",
    SOCIAL_INSURANCE: "month",
    UTILITIES: "month",
    PROVIDENT_FUND: "month",
    PUBLIC_CREDIT: "decided_on",
}

MONEY_COLUMNS: dict[str, tuple[str, ...]] = {
    ENTERPRISES: ("annual_revenue",),
    TAX: ("amount_paid", "declared_sales", "arrears"),
    SOCIAL_INSURANCE: ("amount_due", "amount_paid", "arrears"),
    UTILITIES: ("amount_billed", "amount_paid"),
    PROVIDENT_FUND: ("amount", "arrears"),
}

SIZE_CLASSES: tuple[str, ...] = ("micro", "small", "medium", "large")
TAX_TYPES: tuple[str, ...] = ("VAT", "CIT")
TAX_RATINGS: tuple[str, ...] = ("A", "B", "M", "C", "D")
"""Tax credit ratings, best first."""
RATING_PUBLISHED_MONTH = 4
UTILITY_KINDS: tuple[str, ...] = ("water", "electricity", "gas")
PUBLIC_RECORD_TYPES: tuple[str, ...] = (
    "administrative_penalty",
    "dishonest_judgment_debtor",
    "serious_dishonesty_list",
    "abnormal_operation",
    "licence_revoked",
    "commendation",
)
SEVERITIES: tuple[str, ...] = ("minor", "general", "serious")

TRUTH = "truth"
TRUTH_COLUMNS: tuple[str, ...] = ("uscc", "true_pd", "defaulted")
"""Synthetic ground truth written by :mod:`ml.synth` (``truth.csv``)."""


class SchemaError(ValueError):
    """A table is missing or lacks required columns."""


def check_columns(table: str, frame: pd.DataFrame) -> None:
    """Raise :class:`SchemaError` naming the table and every missing column."""
    if table not in TABLE_COLUMNS:
        raise SchemaError(f"unknown table {table!r}; expected one of {sorted(TABLE_COLUMNS)}")
    missing = [c for c in TABLE_COLUMNS[table] if c not in frame.columns]
    if missing:
        raise SchemaError(f"table {table!r} lacks column(s): {', '.join(missing)}")


def empty_table(table: str) -> pd.DataFrame:
    """An empty frame with the table's columns (useful when a source has no rows)."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in TABLE_COLUMNS[table]})


def check_tables(tables: Mapping[str, pd.DataFrame]) -> None:
    """Check columns of every known table present in ``tables``; ``enterprises`` is required."""
    if ENTERPRISES not in tables:
        raise SchemaError("the 'enterprises' table is required")
    for name, frame in tables.items():
        if name in TABLE_COLUMNS:
            check_columns(name, frame)
