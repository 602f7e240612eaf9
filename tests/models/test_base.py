"""Timestamps are stored and returned as timezone-aware UTC on every database."""

import datetime as dt

import pytest
import sqlalchemy as sa

from app.extensions import db
from models import Organization, OrgKind


def test_timestamps_round_trip_as_aware_utc(app_ctx):
    shanghai = dt.timezone(dt.timedelta(hours=8))
    org = Organization(
        kind=OrgKind.BANK,
        name="时区银行",
        created_at=dt.datetime(2026, 2, 1, 9, 30, tzinfo=shanghai),
    )
    db.session.add(org)
    db.session.commit()
    db.session.expire_all()
    loaded = db.session.scalar(sa.select(Organization).where(Organization.name == "时区银行"))
    assert loaded.created_at == dt.datetime(2026, 2, 1, 1, 30, tzinfo=dt.UTC)
    assert loaded.created_at.utcoffset() == dt.timedelta(0)


def test_naive_datetimes_are_refused(app_ctx):
    db.session.add(Organization(kind=OrgKind.BANK, name="x", created_at=dt.datetime(2026, 1, 1)))
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        db.session.flush()
    db.session.rollback()
