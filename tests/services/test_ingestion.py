"""Ingestion: validation, data minimisation, versioning, idempotency and audit."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import audit, authorization, ingestion
from models import AuditEvent, AuthorizationKind, Enterprise, User
from models.ingestion import BatchStatus, IngestionBatch, RejectedRow
from models.records import PublicCreditRecord, SocialInsuranceRecord, TaxRecord
from tests.conftest import Factory

NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
BAD_USCC = "91350100M000100Y4X"  # wrong check digit


def _enterprise(factory, *, scopes=("tax", "social_insurance"), grant=True):
    account = factory.enterprise()
    user = db.session.get(User, account.user_id)
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == account.organization_id)
    )
    grant_row = None
    if grant:
        grant_row = authorization.grant(
            user,
            enterprise,
            authorization.GrantRequest(AuthorizationKind.COLLECTION, tuple(scopes)),
            now=NOW - dt.timedelta(days=1),
        )
        db.session.commit()
    return enterprise, user, grant_row


def _tax(uscc, period="2026-09", **over):
    row = {
        "uscc": uscc,
        "period": period,
        "tax_type": "VAT",
        "amount_paid": "1200.50",
        "declared_sales": "98000",
        "late_filing": "0",
        "arrears": "0",
    }
    row.update(over)
    return row


def _ingest(rows, key="k1", source="tax", provider="tax-bureau", **kw):
    return ingestion.ingest_rows(
        source, rows, provider=provider, idempotency_key=key, actor="client-1", now=NOW, **kw
    )


def _count(model, **where):
    stmt = sa.select(sa.func.count()).select_from(model)
    for name, value in where.items():
        stmt = stmt.where(getattr(model, name) == value)
    return db.session.scalar(stmt)


def _rejections(batch):
    return list(
        db.session.scalars(
            sa.select(RejectedRow).where(RejectedRow.batch_id == batch.id).order_by(RejectedRow.id)
        )
    )


def test_valid_rows_are_stored_with_canonical_values(app_ctx, factory):
    enterprise, _, _ = _enterprise(factory)
    batch = _ingest(
        [_tax(enterprise.uscc.lower()), _tax(enterprise.uscc, "2026-10", amount_paid="007.5")]
    )
    db.session.commit()
    assert (batch.status, batch.rows_total, batch.accepted, batch.rejected) == (
        BatchStatus.COMPLETED,
        2,
        2,
        0,
    )
    records = db.session.scalars(sa.select(TaxRecord).order_by(TaxRecord.period)).all()
    assert [r.period for r in records] == ["2026-09", "2026-10"]
    assert records[1].amount_paid == Decimal("7.50")
    assert records[0].uscc == enterprise.uscc and records[0].enterprise_id == enterprise.id
    assert records[0].version == 1 and records[0].batch_id == batch.id
    assert records[0].provider == "tax-bureau" and len(records[0].content_hash) == 64
    assert records[0].received_at == NOW and records[0].late_filing is False
    assert batch.submitted_by_client == "client-1"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("period", "2026-13", "bad_month"),
        ("period", "2026/09", "bad_month"),
        ("period", "2026-12", "future_period"),
        ("amount_paid", "-5", "negative"),
        ("amount_paid", "1.234", "bad_amount"),
        ("amount_paid", "1e5", "bad_amount"),
        ("amount_paid", "", "required"),
        ("tax_type", "GST", "bad_enum"),
        ("late_filing", "yes", "bad_flag"),
        ("uscc", BAD_USCC, "bad_uscc"),
        ("amount_paid", '=HYPERLINK("http://evil.example","x")', "bad_amount"),
        ("tax_type", "@SUM(A1:A9)", "bad_enum"),
        ("declared_sales", "+1+1", "bad_amount"),
        ("arrears", "-1+2", "bad_amount"),
        # Full-width digits are not amounts or months the database would take.
        ("amount_paid", "１２００", "bad_amount"),
        ("period", "２０２６-０９", "bad_month"),
        ("late_filing", " 1x", "bad_flag"),
    ],
)
def test_a_bad_field_rejects_the_whole_row_and_keeps_it(app_ctx, factory, field, value, code):
    enterprise, _, _ = _enterprise(factory)
    bad = {**_tax(enterprise.uscc, "2026-08"), field: value}
    batch = _ingest([_tax(enterprise.uscc), bad], first_line=2)
    db.session.commit()
    assert (batch.accepted, batch.rejected) == (1, 1)
    assert _count(TaxRecord) == 1  # never half a row
    [rejection] = _rejections(batch)
    assert (rejection.line, rejection.field, rejection.code) == (3, field, code)
    assert rejection.raw == bad  # kept as received: nothing is lost
    assert rejection.message


def test_every_bad_field_of_a_row_is_reported(app_ctx, factory):
    enterprise, _, _ = _enterprise(factory)
    batch = _ingest([_tax(enterprise.uscc, "13-2026", tax_type="x", arrears="-1")])
    assert batch.rejected == 1
    assert [(r.field, r.code) for r in _rejections(batch)] == [
        ("period", "bad_month"),
        ("tax_type", "bad_enum"),
        ("arrears", "negative"),
    ]


def test_missing_columns_refuse_the_whole_batch(app_ctx, factory):
    enterprise, _, _ = _enterprise(factory)
    row = _tax(enterprise.uscc)
    del row["arrears"], row["tax_type"]
    with pytest.raises(ingestion.MissingColumns) as error:
        _ingest([row])
    assert error.value.columns == ["tax_type", "arrears"]
    assert "tax_type, arrears" in str(error.value.message)
    assert _count(IngestionBatch) == 0 and _count(TaxRecord) == 0


def test_unknown_source_and_bad_provider_are_refused(app_ctx):
    with pytest.raises(ingestion.UnknownSource):
        _ingest([], source="weather")
    with pytest.raises(ingestion.BadProvider):
        _ingest([], provider="=cmd|' /C calc'!A0")
    with pytest.raises(ingestion.IngestionError):
        _ingest([], key=" ")


def test_unregistered_enterprise_is_rejected_without_its_values(app_ctx, factory):
    from app.services.demo import demo_uscc

    stranger = demo_uscc(999_999)
    batch = _ingest([_tax(stranger)])
    [rejection] = _rejections(batch)
    assert (rejection.field, rejection.code) == ("uscc", "unknown_enterprise")
    assert rejection.raw == {"uscc": stranger, "period": "2026-09", "tax_type": "VAT"}
    assert _count(TaxRecord) == 0


def test_no_grant_revoked_or_out_of_range_rows_are_not_stored(app_ctx, factory):
    granted, _, _ = _enterprise(factory)
    never, _, _ = _enterprise(factory, grant=False)
    revoked, revoker, grant = _enterprise(factory)
    other_scope, _, _ = _enterprise(factory, scopes=("utilities",))
    authorization.revoke(revoker, grant, now=NOW - dt.timedelta(hours=1))
    db.session.commit()
    batch = _ingest(
        [
            _tax(granted.uscc),
            _tax(never.uscc),
            _tax(revoked.uscc),
            _tax(other_scope.uscc),
            _tax(granted.uscc, "2024-10"),  # before the grant's data range (2024-11..)
        ]
    )
    db.session.commit()
    assert (batch.accepted, batch.rejected) == (1, 4)
    assert [(r.line, r.code, r.field) for r in _rejections(batch)] == [
        (2, "no_grant", None),
        (3, "no_grant", None),
        (4, "no_grant", None),
        (5, "outside_data_range", None),
    ]
    # data minimisation: the values of refused rows are not kept anywhere
    assert all("amount_paid" not in r.raw for r in _rejections(batch))
    assert db.session.scalars(sa.select(TaxRecord.uscc)).all() == [granted.uscc]


def test_expired_grant_refuses(app_ctx, factory):
    enterprise, _, _ = _enterprise(factory)
    later = NOW + dt.timedelta(days=400)
    batch = ingestion.ingest_rows(
        "tax",
        [_tax(enterprise.uscc)],
        provider="tax-bureau",
        idempotency_key="late",
        actor=None,
        now=later,
    )
    assert batch.rejected == 1 and _rejections(batch)[0].code == "no_grant"


def test_public_credit_needs_no_grant(app_ctx, factory):
    enterprise, _, _ = _enterprise(factory, grant=False)
    row = {
        "uscc": enterprise.uscc,
        "record_id": "PC000000001",
        "record_type": "administrative_penalty",
        "severity": "general",
        "decided_on": "2025-03-01",
        "publication_ends_on": "2028-03-01",
        "repaired_on": "",
    }
    bad = {**row, "record_id": "=1+1", "repaired_on": "2025-01-01"}
    batch = _ingest([row, bad], source="public_credit", provider="creditchina")
    db.session.commit()
    assert (batch.accepted, batch.rejected) == (1, 1)
    record = db.session.scalar(sa.select(PublicCreditRecord))
    assert record.decided_on == dt.date(2025, 3, 1) and record.repaired_on is None
    assert [(r.field, r.code) for r in _rejections(batch)] == [("record_id", "bad_identifier")]


def test_same_rows_again_are_duplicates_and_a_change_is_a_new_version(app_ctx, factory):
    enterprise, _, _ = _enterprise(factory)
    rows = [_tax(enterprise.uscc, "2026-09"), _tax(enterprise.uscc, "2026-10")]
    _ingest(rows, key="first")
    db.session.commit()
    again = _ingest(rows, key="second")
    db.session.commit()
    assert (again.accepted, again.duplicates, again.corrected) == (0, 2, 0)
    assert _count(TaxRecord) == 2
    fixed = _ingest([_tax(enterprise.uscc, "2026-09", amount_paid="1300.00"), rows[1]], key="third")
    db.session.commit()
    assert (fixed.accepted, fixed.duplicates, fixed.corrected) == (0, 1, 1)
    versions = db.session.execute(
        sa.select(TaxRecord.version, TaxRecord.amount_paid)
        .where(TaxRecord.period == "2026-09")
        .order_by(TaxRecord.version)
    ).all()
    assert versions == [(1, Decimal("1200.50")), (2, Decimal("1300.00"))]


def test_repeats_inside_one_batch_are_versions_in_order(app_ctx, factory):
    enterprise, _, _ = _enterprise(factory)
    row = _tax(enterprise.uscc)
    batch = _ingest([row, row, {**row, "arrears": "5"}])
    assert (batch.accepted, batch.duplicates, batch.corrected) == (1, 1, 1)
    assert _count(TaxRecord, version=2) == 1


def test_idempotency_key_replay_returns_the_first_batch(app_ctx, factory):
    enterprise, _, _ = _enterprise(factory)
    rows = [_tax(enterprise.uscc)]
    first = _ingest(rows, key="same")
    db.session.commit()
    events = _count(AuditEvent)
    replay = _ingest(rows, key="same")
    assert replay.id == first.id
    assert _count(IngestionBatch) == 1 and _count(TaxRecord) == 1
    assert _count(AuditEvent) == events
    with pytest.raises(ingestion.IdempotencyConflict) as error:
        _ingest([_tax(enterprise.uscc, amount_paid="1")], key="same")
    assert "same" in str(error.value.message)
    # the key is per provider: another provider may use it
    other = _ingest(rows, key="same", provider="another-bureau")
    assert other.id != first.id and other.duplicates == 1


def test_audit_events_per_batch_and_per_enterprise_keep_the_chain(app_ctx, factory):
    one, _, _ = _enterprise(factory)
    two, _, _ = _enterprise(factory, grant=False)
    batch = _ingest([_tax(one.uscc), _tax(one.uscc, "2026-10"), _tax(two.uscc)])
    db.session.commit()
    events = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "ingestion.batch").order_by(AuditEvent.seq)
    ).all()
    assert [e.enterprise_id for e in events] == [None, one.id, two.id]
    assert events[0].details["accepted"] == 2 and events[0].details["rejected"] == 1
    assert events[1].details["stored"] == 2 and events[1].details["provider"] == "tax-bureau"
    assert events[2].details["refused"] == 1 and events[2].details["stored"] == 0
    assert all(e.object_id == str(batch.id) for e in events)
    assert audit.verify().ok
    # the enterprise sees the delivery in its own trail
    assert [e.action for e in audit.events_for_enterprise(one.id)][:1] == ["ingestion.batch"]


def test_other_sources_validate_their_own_fields(app_ctx, factory):
    enterprise, _, _ = _enterprise(factory)
    rows = [
        {
            "uscc": enterprise.uscc,
            "month": "2026-09",
            "insured_headcount": "12",
            "amount_due": "5000",
            "amount_paid": "5000",
            "arrears": "0",
        },
        {
            "uscc": enterprise.uscc,
            "month": "2026-10",
            "insured_headcount": "-3",
            "amount_due": "5000",
            "amount_paid": "5000",
            "arrears": "0",
        },
    ]
    batch = _ingest(rows, source="social_insurance", provider="si-centre")
    assert (batch.accepted, batch.rejected) == (1, 1)
    assert _rejections(batch)[0].field == "insured_headcount"
    assert db.session.scalar(sa.select(SocialInsuranceRecord.insured_headcount)) == 12
    rating = _ingest(
        [
            {"uscc": enterprise.uscc, "year": "2025", "rating": "A"},
            {"uscc": enterprise.uscc, "year": "2027", "rating": "B"},
            {"uscc": enterprise.uscc, "year": "2024", "rating": "Z"},
        ],
        source="tax_credit_rating",
        key="rating",
    )
    assert (rating.accepted, rating.rejected) == (1, 2)
    assert [r.code for r in _rejections(rating)] == ["future_period", "bad_enum"]


def test_records_are_append_only_at_the_database(app_ctx, factory):
    enterprise, _, _ = _enterprise(factory)
    _ingest([_tax(enterprise.uscc)])
    db.session.commit()
    record = db.session.scalar(sa.select(TaxRecord))
    copy = {c.key: getattr(record, c.key) for c in TaxRecord.__table__.columns if c.key != "id"}
    with pytest.raises(sa.exc.IntegrityError):
        db.session.execute(sa.insert(TaxRecord), [copy])  # same key, same version
    db.session.rollback()
    with pytest.raises(sa.exc.IntegrityError):
        db.session.execute(sa.insert(TaxRecord), [{**copy, "version": 2, "arrears": -1}])
    db.session.rollback()


def test_large_batch_goes_through_in_chunks(app_ctx, factory, monkeypatch):
    monkeypatch.setattr(ingestion, "CHUNK_ROWS", 7)
    enterprise, _, _ = _enterprise(factory)
    months = [f"{y}-{m:02d}" for y in (2025, 2026) for m in range(1, 13)][:22]
    rows = [_tax(enterprise.uscc, month) for month in months]
    rows += [_tax(enterprise.uscc, months[0]), _tax(enterprise.uscc, "bad")]
    batch = _ingest(rows)
    assert (batch.rows_total, batch.accepted, batch.duplicates, batch.rejected) == (24, 22, 1, 1)
    assert _rejections(batch)[0].line == 24


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("decided_on", "2025-02-30", "bad_date"),
        ("decided_on", "2025/03/01", "bad_date"),
        ("decided_on", "2027-01-01", "future_date"),
        ("repaired_on", "2027-01-01", "future_date"),
        ("publication_ends_on", "2024-01-01", "date_order"),
        ("severity", "", "required"),
        ("record_type", "bankruptcy", "bad_enum"),
    ],
)
def test_public_credit_dates_and_enums(app_ctx, factory, field, value, code):
    enterprise, _, _ = _enterprise(factory, grant=False)
    row = {
        "uscc": enterprise.uscc,
        "record_id": "PC1",
        "record_type": "abnormal_operation",
        "severity": "minor",
        "decided_on": "2025-03-01",
        "publication_ends_on": "",
        "repaired_on": "",
        field: value,
    }
    batch = _ingest([row], source="public_credit", provider="creditchina")
    assert batch.rejected == 1 and _count(PublicCreditRecord) == 0
    assert [(r.field, r.code) for r in _rejections(batch)] == [(field, code)]


def test_invalid_rows_of_enterprises_without_a_grant_keep_only_their_key(app_ctx, factory):
    granted, _, _ = _enterprise(factory)
    never, _, _ = _enterprise(factory, grant=False)
    batch = _ingest(
        [_tax(granted.uscc, amount_paid="-1"), _tax(never.uscc, amount_paid="-1", arrears="7")]
    )
    first, second = _rejections(batch)
    assert first.raw["amount_paid"] == "-1" and first.raw["arrears"] == "0"
    assert second.code == "negative"
    assert second.raw == {"uscc": never.uscc, "period": "2026-09", "tax_type": "VAT"}


def test_concurrent_batches_with_the_same_record_store_it_once_on_postgresql(pg_app):
    """The second writer of the same version fails on UNIQUE(key, version) and, retried,
    counts the row as a duplicate; batches of other records run side by side."""
    from app.services import accounts
    from app.services.demo import demo_uscc

    with pg_app.app_context():
        user = accounts.register_enterprise(
            accounts.EnterpriseRegistration(
                uscc=demo_uscc(77_001),
                name="并发测试有限公司",
                legal_representative="林测试",
                founded_on=dt.date(2018, 5, 1),
                region_code="350102",
                industry_code="C13",
                employees=25,
                annual_revenue=Decimal("5000000"),
                total_assets=None,
                user_name="经办人",
                email="concurrent@example.com",
                password="correct horse battery",
            )
        )
        enterprise = db.session.scalar(
            sa.select(Enterprise).where(Enterprise.organization_id == user.organization_id)
        )
        authorization.grant(
            user,
            enterprise,
            authorization.GrantRequest(AuthorizationKind.COLLECTION, ("tax",)),
            now=NOW - dt.timedelta(days=1),
        )
        db.session.commit()
        rows = [_tax(enterprise.uscc)]
        db.session.remove()

    first_flushed = threading.Event()
    outcome: dict[str, object] = {}

    def first() -> None:
        with pg_app.app_context():
            _ingest(rows, key="a")
            first_flushed.set()
            time.sleep(0.5)  # the second writer is now waiting on the unique index
            db.session.commit()
            db.session.remove()

    def second() -> None:
        first_flushed.wait(10)
        with pg_app.app_context():
            try:
                _ingest(rows, key="b")
                db.session.commit()
                outcome["first_try"] = "stored"
            except sa.exc.IntegrityError:
                db.session.rollback()
                outcome["first_try"] = "conflict"
                batch = _ingest(rows, key="b")
                db.session.commit()
                outcome["retry_duplicates"] = batch.duplicates
            db.session.remove()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcome == {"first_try": "conflict", "retry_duplicates": 1}
    with pg_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(TaxRecord)) == 1
        assert audit.verify().ok
        db.session.remove()


def test_values_outside_the_fast_path_are_judged_by_the_parsers(app_ctx, factory):
    """Amounts and counts are checked column-wide; anything unusual (spaces, numbers from
    JSON, leading zeros) still gets the same canonical value or the same precise problem."""
    enterprise, _, _ = _enterprise(factory)
    batch = _ingest(
        [
            _tax(enterprise.uscc, "2026-07", amount_paid=" 0012.5 ", declared_sales=98000),
            _tax(enterprise.uscc, "2026-08", amount_paid=1200.5, late_filing=True, arrears=0),
            _tax(enterprise.uscc, "2026-09", amount_paid="12.", arrears=None),
        ],
        first_line=2,
    )
    db.session.commit()
    assert (batch.accepted, batch.rejected) == (2, 1)
    stored = {r.period: r for r in db.session.scalars(sa.select(TaxRecord))}
    assert stored["2026-07"].amount_paid == Decimal("12.50")
    assert stored["2026-07"].declared_sales == Decimal("98000.00")
    assert (stored["2026-08"].amount_paid, stored["2026-08"].late_filing) == (
        Decimal("1200.50"),
        True,
    )
    assert [(r.line, r.field, r.code) for r in _rejections(batch)] == [
        (4, "amount_paid", "bad_amount"),
        (4, "arrears", "required"),
    ]


def _spy_reader(monkeypatch):
    """Records, per batch, whether its lookups got a connection of their own."""
    seen: list[bool] = []
    real = ingestion._reader

    def spy():
        reader = real()
        seen.append(reader is not None)
        return reader

    monkeypatch.setattr(ingestion, "_reader", spy)
    return seen


def _chunked_history(uscc):
    """Three chunks of three rows: a record, its correction two chunks later, the same
    correction again (a duplicate) and the first content back (a third version)."""
    return [
        _tax(uscc, "2026-01", amount_paid="1"),
        _tax(uscc, "2026-02"),
        _tax(uscc, "2026-03"),
        _tax(uscc, "2026-04"),
        _tax(uscc, "2026-01", amount_paid="2"),  # chunk 2: a correction
        _tax(uscc, "2026-05"),
        _tax(uscc, "2026-01", amount_paid="2"),  # chunk 3: a duplicate of the correction
        _tax(uscc, "2026-01", amount_paid="1"),  # the first content again: version 3
        _tax(uscc, "bad"),
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("held", [10_000, 1])
def test_pipelined_chunks_version_records_across_chunks_on_postgresql(pg_app, monkeypatch, held):
    """On PostgreSQL a chunk's lookups and versions are worked out while the previous
    chunks are still being stored (on a second connection, the transaction being fresh),
    their rows going on into the same COPY; the outcome is exactly that of one chunk after
    the other, whether the rejected rows wait for the end of the batch or (``held`` 1) end
    the COPY to be stored at once."""
    monkeypatch.setattr(ingestion, "CHUNK_ROWS", 3)
    monkeypatch.setattr(ingestion, "REJECTIONS_HELD", held)
    readers = _spy_reader(monkeypatch)
    factory = Factory(pg_app)
    with pg_app.app_context():
        enterprise, _, _ = _enterprise(factory)
        uscc = enterprise.uscc
        db.session.commit()
        db.session.remove()
    with pg_app.app_context():
        batch = _ingest(_chunked_history(uscc))
        db.session.commit()
        counts = (batch.accepted, batch.corrected, batch.duplicates, batch.rejected)
        assert counts == (5, 2, 1, 1)
        versions = db.session.execute(
            sa.select(TaxRecord.version, TaxRecord.amount_paid)
            .where(TaxRecord.period == "2026-01")
            .order_by(TaxRecord.version)
        ).all()
        assert versions == [(1, Decimal("1.00")), (2, Decimal("2.00")), (3, Decimal("1.00"))]
        assert _rejections(batch)[0].line == 9
        assert audit.verify().ok
        assert readers == [True]  # the lookups went to the second connection
        db.session.remove()


@pytest.mark.postgres
def test_lookups_running_beside_validation_see_stored_records_and_refusals(pg_app, monkeypatch):
    """With a second connection each chunk's enterprises are looked up (ids, grants, the
    latest stored versions) while the chunk is validated: records stored by an earlier
    batch are still recognised chunk after chunk (duplicates, corrections), and rows of an
    unregistered enterprise or of one without a grant are still refused, each with its
    reason."""
    monkeypatch.setattr(ingestion, "CHUNK_ROWS", 2)
    monkeypatch.setattr(ingestion, "FIRST_CHUNK_ROWS", 2)
    readers = _spy_reader(monkeypatch)
    from app.services.demo import demo_uscc

    factory = Factory(pg_app)
    with pg_app.app_context():
        granted, _, _ = _enterprise(factory)
        ungranted, _, _ = _enterprise(factory, grant=False)
        usccs = (granted.uscc, ungranted.uscc)
        db.session.commit()
        db.session.remove()
    first = [_tax(usccs[0], f"2026-0{m}") for m in range(1, 5)]
    with pg_app.app_context():
        assert _ingest(first, key="first").accepted == 4
        db.session.commit()
        db.session.remove()
    again = [
        _tax(usccs[1], "2026-01"),  # chunk 1: no grant
        _tax(usccs[0], "2026-01"),  # the same as stored: a duplicate
        _tax(usccs[0], "2026-02", amount_paid="9"),  # chunk 2: a correction
        _tax(demo_uscc(77_003), "2026-02"),  # not registered
        _tax(usccs[0], "2026-03"),  # chunk 3: a duplicate
        _tax(usccs[0], "2026-05"),  # new
    ]
    with pg_app.app_context():
        batch = _ingest(again, key="again", first_line=2)
        db.session.commit()
        counts = (batch.accepted, batch.corrected, batch.duplicates, batch.rejected)
        assert counts == (1, 1, 2, 2)
        assert [(r.line, r.code) for r in _rejections(batch)] == [
            (2, "no_grant"),
            (5, "unknown_enterprise"),
        ]
        assert _count(TaxRecord, period="2026-02") == 2
        assert audit.verify().ok
        assert readers == [True, True]
        db.session.remove()


@pytest.mark.postgres
def test_an_enterprise_registered_in_the_same_transaction_has_its_records_stored(
    pg_app, monkeypatch
):
    """The lookups see what the caller's own transaction wrote (no second connection then):
    an enterprise and its grant made just before, not yet committed, are found."""
    monkeypatch.setattr(ingestion, "CHUNK_ROWS", 3)
    readers = _spy_reader(monkeypatch)
    from app.services import accounts
    from app.services.demo import demo_uscc

    with pg_app.app_context():
        user = accounts.register_enterprise(
            accounts.EnterpriseRegistration(
                uscc=demo_uscc(77_002), name="同事务测试有限公司", legal_representative="林测试",
                founded_on=dt.date(2018, 5, 1), region_code="350102", industry_code="C13",
                employees=25, annual_revenue=Decimal("5000000"), total_assets=None,
                user_name="经办人", email="same-tx@example.com", password="correct horse battery",
            )
        )  # fmt: skip
        enterprise = db.session.scalar(
            sa.select(Enterprise).where(Enterprise.organization_id == user.organization_id)
        )
        authorization.grant(
            user,
            enterprise,
            authorization.GrantRequest(AuthorizationKind.COLLECTION, ("tax",)),
            now=NOW - dt.timedelta(days=1),
        )
        batch = _ingest(_chunked_history(enterprise.uscc))  # nothing committed yet
        assert (batch.accepted, batch.corrected, batch.duplicates, batch.rejected) == (5, 2, 1, 1)
        db.session.commit()
        assert _count(TaxRecord) == 7
        assert readers == [False]  # the session's own connection
        db.session.remove()


@pytest.mark.postgres
def test_a_batch_failing_midway_keeps_nothing_on_postgresql(pg_app, monkeypatch):
    """The rows stop arriving with an error (a file that cannot be decoded, say) while the
    first chunk's COPY is still running: the COPY is cancelled, the error reaches the
    caller, and after the rollback nothing of the batch is left; the session works on.
    (The rows are read a chunk ahead: the error comes after the first two chunks.)"""
    monkeypatch.setattr(ingestion, "CHUNK_ROWS", 3)
    cancelled: list[str] = []
    abort = ingestion._PendingCopy.abort

    def spy(self, exc):
        cancelled.append(type(exc).__name__)
        abort(self, exc)

    monkeypatch.setattr(ingestion._PendingCopy, "abort", spy)
    factory = Factory(pg_app)
    with pg_app.app_context():
        enterprise, _, _ = _enterprise(factory)
        uscc = enterprise.uscc
        db.session.remove()

    def rows():
        yield from _chunked_history(uscc)[:7]
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    with pg_app.app_context():
        with pytest.raises(UnicodeDecodeError):
            _ingest(rows())
        assert cancelled == ["UnicodeDecodeError"]  # the first chunk's COPY was running
        db.session.rollback()
        assert _count(TaxRecord) == 0
        assert _count(IngestionBatch) == 0
        batch = _ingest(_chunked_history(uscc))
        db.session.commit()
        assert batch.accepted == 5
        db.session.remove()


SAMPLES = {
    "tax": ({"period": "2026-09", "tax_type": "VAT", "amount_paid": "1", "declared_sales": "2",
             "late_filing": "0", "arrears": "0"}, "amount_paid", "7"),
    "tax_credit_rating": ({"year": "2025", "rating": "A"}, "rating", "B"),
    "social_insurance": ({"month": "2026-09", "insured_headcount": "12", "amount_due": "5",
                          "amount_paid": "5", "arrears": "0"}, "insured_headcount", "13"),
    "utilities": ({"month": "2026-09", "utility": "water", "consumption": "3.5",
                   "amount_billed": "10", "amount_paid": "10", "days_overdue": "0"},
                  "days_overdue", "3"),
    "provident_fund": ({"month": "2026-09", "contributing_employees": "9", "amount": "900",
                        "arrears": "0"}, "amount", "950"),
    "public_credit": ({"record_id": "CF-2025/001", "record_type": "administrative_penalty",
                       "severity": "general", "decided_on": "2025-03-01",
                       "publication_ends_on": "", "repaired_on": ""}, "severity", "serious"),
}  # fmt: skip


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_every_source_recognises_its_stored_records(app_ctx, factory, source):
    """Each source's natural key, as read back from its table, matches the key of a new
    row: the same row again is a duplicate, a changed one the next version."""
    enterprise, _, _ = _enterprise(
        factory, scopes=("tax", "social_insurance", "utilities", "provident_fund")
    )
    sample, field, new_value = SAMPLES[source]
    row = {"uscc": enterprise.uscc, **sample}
    changed = {**row, field: new_value}
    first = _ingest([row], key="1", source=source)
    db.session.commit()
    again = _ingest([row], key="2", source=source)
    db.session.commit()
    correction = _ingest([changed], key="3", source=source)
    db.session.commit()
    assert (first.accepted, again.duplicates, correction.corrected) == (1, 1, 1)
    model = ingestion.RECORD_MODELS[source]
    assert db.session.scalar(sa.select(sa.func.max(model.version))) == 2


@pytest.mark.parametrize(
    ("total", "size"),
    [(0, 3), (1, 3), (24, 7), (9, 3), (2_400, 25_000), (7_000, 25_000), (50_000, 25_000),
     (200_001, 25_000)],
)  # fmt: skip
def test_chunks_start_small_and_end_small(total, size):
    """Chunks keep the rows in order and are never larger than ``size``; a large batch
    starts with a small chunk (the database starts early) and ends with small ones (it
    finishes soon after the last rows are checked)."""
    chunks = list(ingestion._chunks(iter(range(total)), size))
    assert [row for chunk in chunks for row in chunk] == list(range(total))
    assert all(0 < len(chunk) <= size for chunk in chunks)
    smallest = min(size, ingestion.FIRST_CHUNK_ROWS)
    if total > 2 * smallest:
        assert len(chunks[0]) == smallest
        assert len(chunks[-1]) <= 2 * smallest
    if total >= 200_000:
        assert max(len(chunk) for chunk in chunks) == size


FAST_PATH_VALUES = [
    "0", "00", "000", "7", "007", "0.5", "00.5", "000.05", "0.00", "12", "12.5", "12.50",
    "012.50", "1" * 16, "9" * 16 + ".99", "0" * 16 + ".1", "1" * 17, "1.234", ".5", "5.",
    "1..2", "-3", "-0.5", "1e3", "１２", "12 ", "1,000", "+1", "0x10", "",
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "parse"),
    [(ingestion._col_money, ingestion._money), (ingestion._col_int, ingestion._integer)],
)
def test_the_vectorized_fast_paths_agree_with_the_parsers(make, parse):
    """Amounts and counts are made canonical column-wide; the result is exactly what their
    parser makes of each value (or the parser's problem with it)."""
    column = make("amount")
    canonical, bad = ingestion._Ingestion._fast(pa.array(FAST_PATH_VALUES), column, parse)
    for row, (value, text) in enumerate(zip(FAST_PATH_VALUES, canonical.to_pylist(), strict=True)):
        try:
            expected = parse(value) if value else None
        except ingestion._Bad as error:
            assert bad[row] == (error.code, error.message)
            assert text is None
        else:
            assert text == expected
            assert row not in bad or not value


@pytest.mark.postgres
@pytest.mark.parametrize("template", ["used", "refused", "slot-like client"])
def test_per_enterprise_audit_events_chain_on_postgresql(pg_app, monkeypatch, template):
    """On PostgreSQL the per-enterprise events are made from one template per batch (and
    COPYed): their content and hashes are exactly those audit.record would make, whatever
    the client's name holds; should the template not give the same first event, each event
    is made on its own."""
    if template == "refused":  # a template that makes other text than audit.canonical
        formatter = ingestion._formatter
        monkeypatch.setattr(ingestion, "_formatter", lambda text: formatter(text) + " ")
    made: list[bool] = []
    audit_lines = ingestion._audit_lines

    def spy(*args):
        lines = audit_lines(*args)
        made.append(lines is not None)
        return lines

    monkeypatch.setattr(ingestion, "_audit_lines", spy)
    client = 'client {0} "1"\\\t中文'
    if template == "slot-like client":
        client = "\ue000seq\ue000"
    factory = Factory(pg_app)
    with pg_app.app_context():
        one = _enterprise(factory)[0]
        two = _enterprise(factory, grant=False)[0]
        (one_uscc, one_id), (two_uscc, two_id) = (one.uscc, one.id), (two.uscc, two.id)
        db.session.remove()
    with pg_app.app_context():
        batch = ingestion.ingest_rows(
            "tax",
            [_tax(one_uscc), _tax(one_uscc, "2026-10"), _tax(two_uscc)],
            provider="tax-bureau",
            idempotency_key="k1",
            actor=client,
            now=NOW,
        )
        db.session.commit()
        events = db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "ingestion.batch")
            .order_by(AuditEvent.seq)
        ).all()
        assert [e.enterprise_id for e in events] == [None, one_id, two_id]
        assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 3))
        assert events[1].details == {
            "source": "tax", "provider": "tax-bureau", "batch_id": batch.id,
            "client_id": client, "stored": 2, "corrected": 0, "duplicates": 0, "refused": 0,
        }  # fmt: skip
        assert events[2].details["refused"] == 1
        assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(events))
        assert audit.verify().ok
        assert made == [template == "used"]
        db.session.remove()
