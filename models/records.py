"""Source records: one append-only table per source of ``ml.schema``.

Table and column names are those of :mod:`ml.schema`, so the risk model reads these tables
as they are. Every row also carries the enterprise it belongs to, the provider and batch that
delivered it, its ``version`` and the SHA-256 ``content_hash`` of its canonical values.

Nothing is updated or deleted: a correction is a new row with the same natural key
(``ml.schema.KEY_COLUMNS``) and the next version; readers keep the highest version per key.

Value conventions (as in ``ml.schema``): months and tax periods are ``'YYYY-MM'`` strings
(they sort chronologically and are what ``ml`` reads); dates are ``DATE``; money is CNY as
``NUMERIC(18, 2)``; enumerations are short strings held to their values by CHECKs.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from ml import schema
from models.base import Base, utcnow
from models.ingestion import IngestionBatch  # noqa: F401  (the batch_id target)

Money = sa.Numeric(18, 2)
# 64-bit ids on PostgreSQL (a province's records outgrow 2^31); SQLite's rowid is already.
RecordId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class TaxType(enum.StrEnum):
    VAT = "VAT"
    CIT = "CIT"


class TaxRating(enum.StrEnum):
    A = "A"
    B = "B"
    M = "M"
    C = "C"
    D = "D"


class UtilityKind(enum.StrEnum):
    WATER = "water"
    ELECTRICITY = "electricity"
    GAS = "gas"


class PublicRecordType(enum.StrEnum):
    ADMINISTRATIVE_PENALTY = "administrative_penalty"
    DISHONEST_JUDGMENT_DEBTOR = "dishonest_judgment_debtor"
    SERIOUS_DISHONESTY_LIST = "serious_dishonesty_list"
    ABNORMAL_OPERATION = "abnormal_operation"
    LICENCE_REVOKED = "licence_revoked"
    COMMENDATION = "commendation"


class Severity(enum.StrEnum):
    MINOR = "minor"
    GENERAL = "general"
    SERIOUS = "serious"


for _enum, _values in (
    (TaxType, schema.TAX_TYPES),
    (TaxRating, schema.TAX_RATINGS),
    (UtilityKind, schema.UTILITY_KINDS),
    (PublicRecordType, schema.PUBLIC_RECORD_TYPES),
    (Severity, schema.SEVERITIES),
):
    if tuple(_enum) != _values:  # the canonical schema is the source of truth
        raise RuntimeError(f"{_enum.__name__} differs from ml.schema: {_values}")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _month_like(column: str) -> str:
    return f"{column} LIKE '____-__'"


def _non_negative(*columns: str) -> str:
    return " AND ".join(f"{c} >= 0" for c in columns)


class SourceRecord(Base):
    """Columns every source table shares (abstract: no table of its own)."""

    __abstract__ = True

    id: Mapped[int] = mapped_column(RecordId, primary_key=True)
    uscc: Mapped[str] = mapped_column(sa.String(18))
    version: Mapped[int] = mapped_column(default=1)
    provider: Mapped[str] = mapped_column(sa.String(100))
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @declared_attr
    def enterprise_id(cls) -> Mapped[int]:
        return mapped_column(sa.ForeignKey("enterprise.id"))

    @declared_attr
    def batch_id(cls) -> Mapped[int]:
        return mapped_column(sa.ForeignKey("ingestion_batch.id"))


def _record_args(table: str, *checks: tuple[str, str]) -> tuple[sa.schema.SchemaItem, ...]:
    key = schema.KEY_COLUMNS[table]
    period = schema.PERIOD_COLUMN[table]
    return (
        sa.UniqueConstraint(*key, "version", name=f"uq_{table}_key_version"),
        sa.Index(f"ix_{table}_enterprise_period", "enterprise_id", period),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        *(sa.CheckConstraint(sql, name=name) for name, sql in checks),
    )


class TaxRecord(SourceRecord):
    __tablename__ = schema.TAX

    period: Mapped[str] = mapped_column(sa.String(7))
    tax_type: Mapped[str] = mapped_column(sa.String(3))
    amount_paid: Mapped[Decimal] = mapped_column(Money)
    declared_sales: Mapped[Decimal] = mapped_column(Money)
    late_filing: Mapped[bool]
    arrears: Mapped[Decimal] = mapped_column(Money)

    __table_args__ = _record_args(
        schema.TAX,
        ("period_format", _month_like("period")),
        ("tax_type_known", _one_of("tax_type", schema.TAX_TYPES)),
        ("amounts_non_negative", _non_negative("amount_paid", "declared_sales", "arrears")),
    )


class TaxCreditRatingRecord(SourceRecord):
    __tablename__ = schema.TAX_CREDIT_RATING

    year: Mapped[int]
    rating: Mapped[str] = mapped_column(sa.String(1))

    __table_args__ = _record_args(
        schema.TAX_CREDIT_RATING,
        ("year_range", "year >= 1990 AND year <= 2200"),
        ("rating_known", _one_of("rating", schema.TAX_RATINGS)),
    )


class SocialInsuranceRecord(SourceRecord):
    __tablename__ = schema.SOCIAL_INSURANCE

    month: Mapped[str] = mapped_column(sa.String(7))
    insured_headcount: Mapped[int]
    amount_due: Mapped[Decimal] = mapped_column(Money)
    amount_paid: Mapped[Decimal] = mapped_column(Money)
    arrears: Mapped[Decimal] = mapped_column(Money)

    __table_args__ = _record_args(
        schema.SOCIAL_INSURANCE,
        ("month_format", _month_like("month")),
        (
            "values_non_negative",
            _non_negative("insured_headcount", "amount_due", "amount_paid", "arrears"),
        ),
    )


class UtilityRecord(SourceRecord):
    __tablename__ = schema.UTILITIES

    month: Mapped[str] = mapped_column(sa.String(7))
    utility: Mapped[str] = mapped_column(sa.String(12))
    # kWh for electricity, cubic metres for water and gas.
    consumption: Mapped[Decimal] = mapped_column(sa.Numeric(18, 2))
    amount_billed: Mapped[Decimal] = mapped_column(Money)
    amount_paid: Mapped[Decimal] = mapped_column(Money)
    days_overdue: Mapped[int]

    __table_args__ = _record_args(
        schema.UTILITIES,
        ("month_format", _month_like("month")),
        ("utility_known", _one_of("utility", schema.UTILITY_KINDS)),
        (
            "values_non_negative",
            _non_negative("consumption", "amount_billed", "amount_paid", "days_overdue"),
        ),
    )


class ProvidentFundRecord(SourceRecord):
    __tablename__ = schema.PROVIDENT_FUND

    month: Mapped[str] = mapped_column(sa.String(7))
    contributing_employees: Mapped[int]
    amount: Mapped[Decimal] = mapped_column(Money)
    arrears: Mapped[Decimal] = mapped_column(Money)

    __table_args__ = _record_args(
        schema.PROVIDENT_FUND,
        ("month_format", _month_like("month")),
        ("values_non_negative", _non_negative("contributing_employees", "amount", "arrears")),
    )


class PublicCreditRecord(SourceRecord):
    """Public data (credit China and the like): stored without a collection grant."""

    __tablename__ = schema.PUBLIC_CREDIT

    record_id: Mapped[str] = mapped_column(sa.String(64))
    record_type: Mapped[str] = mapped_column(sa.String(32))
    severity: Mapped[str] = mapped_column(sa.String(8))
    decided_on: Mapped[dt.date]
    publication_ends_on: Mapped[dt.date | None]
    repaired_on: Mapped[dt.date | None]

    __table_args__ = _record_args(
        schema.PUBLIC_CREDIT,
        ("record_type_known", _one_of("record_type", schema.PUBLIC_RECORD_TYPES)),
        ("severity_known", _one_of("severity", schema.SEVERITIES)),
        ("publication_after_decision", "publication_ends_on >= decided_on"),
        ("repair_after_decision", "repaired_on >= decided_on"),
    )


RECORD_MODELS: dict[str, type[SourceRecord]] = {
    schema.TAX: TaxRecord,
    schema.TAX_CREDIT_RATING: TaxCreditRatingRecord,
    schema.SOCIAL_INSURANCE: SocialInsuranceRecord,
    schema.UTILITIES: UtilityRecord,
    schema.PROVIDENT_FUND: ProvidentFundRecord,
    schema.PUBLIC_CREDIT: PublicCreditRecord,
}
"""Source table name → model."""


TRIGGER_ENFORCED_FOREIGN_KEYS = frozenset(
    f"fk_{table}_{column}_{parent}"
    for table in RECORD_MODELS
    for column, parent in (("enterprise_id", "enterprise"), ("batch_id", "ingestion_batch"))
)
"""Foreign keys of the record tables that PostgreSQL enforces per statement with triggers
(migration ``0019_record_refs``) rather than as constraints; SQLite keeps them as declared."""


def trigger_enforced(dialect_name: str) -> Callable[..., bool]:
    """An Alembic ``include_object`` hook for ``dialect_name``: leaves the foreign keys that
    the database enforces with triggers out of the comparison of models and schema."""

    def include_object(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        return not (
            dialect_name == "postgresql"
            and type_ == "foreign_key_constraint"
            and name in TRIGGER_ENFORCED_FOREIGN_KEYS
        )

    return include_object
