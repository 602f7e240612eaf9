"""A bank's profile page shows the latest version of each record of the newest 24 periods,
picked in the query: years of older records are not read."""

from __future__ import annotations

import uuid
from decimal import Decimal

import sqlalchemy as sa
from flask import Flask

from app.services import bank_views, objections
from models import Enterprise, IngestionBatch, User, db
from models.records import TaxRecord
from tests.conftest import Factory
from tests.support.list_pages import capture


def _months(n: int) -> list[str]:
    return [f"{2024 + i // 12:04d}-{i % 12 + 1:02d}" for i in range(n)]  # oldest first


def _tax(enterprise: Enterprise, months: list[str], version: int = 1, paid: str = "100") -> None:
    batch = IngestionBatch(source="tax", provider="test", idempotency_key=uuid.uuid4().hex,
                           content_hash="0" * 64)  # fmt: skip
    db.session.add(batch)
    db.session.flush()
    for month in months:
        for tax_type in ("VAT", "CIT"):
            db.session.add(
                TaxRecord(enterprise_id=enterprise.id, uscc=enterprise.uscc, provider="test",
                          batch_id=batch.id, content_hash="0" * 64, version=version,
                          period=month, tax_type=tax_type, amount_paid=Decimal(paid),
                          declared_sales=Decimal(1000), late_filing=False, arrears=Decimal(0))
            )  # fmt: skip
    db.session.flush()


def test_the_newest_24_periods_are_read_and_older_ones_are_not(
    app: Flask, app_ctx: Flask, factory: Factory
) -> None:
    user = db.session.get(User, factory.enterprise().user_id)
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == user.organization_id)
    )
    months = _months(30)
    _tax(enterprise, months)
    _tax(enterprise, [months[-1]], version=2, paid="200")  # a correction of the newest month
    db.session.commit()
    enterprise_id = enterprise.id
    with capture(app) as found:
        rows = bank_views._latest_versions("tax", enterprise_id)
    assert len(found.statements) == 1
    assert sorted({r.period for r in rows}) == months[-24:]
    assert len(rows) == 48  # two tax types a month, the latest version only
    newest = [r for r in rows if r.period == months[-1]]
    assert {(r.version, r.amount_paid) for r in newest} == {(2, Decimal("200.00"))}
    assert [r.period for r in rows] == sorted((r.period for r in rows), reverse=True)
    # picked in the query: the statement itself answers only these rows
    read = objections.latest_record_rows(enterprise_id, "tax", ["amount_paid"], months=24)
    assert len(read) == 48 and min(r.period for r in read) == months[-24]
    assert len(objections.latest_record_rows(enterprise_id, "tax", ["amount_paid"])) == 60
    # Fewer periods than 24: all of them.
    few = db.session.get(User, factory.enterprise().user_id)
    other = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == few.organization_id)
    )
    _tax(other, _months(5))
    db.session.commit()
    assert len(bank_views._latest_versions("tax", other.id)) == 10
