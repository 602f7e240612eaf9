"""On PostgreSQL, records always name an enterprise and a batch that exist.

The record tables check their references once per statement (migration
``0019_record_refs``) rather than with foreign keys; the checks must refuse exactly what a
foreign key refuses, also when an enterprise is deleted while another transaction adds its
records. (The models declare the foreign keys; SQLite, the embedded default, does not
enforce them.) These tests always run on PostgreSQL, also in the SQLite pass.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from models import Enterprise
from models.ingestion import BatchStatus, IngestionBatch
from models.records import RECORD_MODELS, TaxRecord
from tests.conftest import Factory

NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(pg_app):
    with pg_app.app_context():
        yield Factory(pg_app)
        db.session.remove()


def _batch(key: str = "k") -> IngestionBatch:
    batch = IngestionBatch(
        source="tax", provider="tax-bureau", idempotency_key=key, content_hash="",
        received_at=NOW, status=BatchStatus.COMPLETED,
    )  # fmt: skip
    db.session.add(batch)
    db.session.flush()
    return batch


def _committed_enterprise_and_batch(pg_app) -> tuple[int, str, int]:
    """An enterprise and a batch, committed (for tests whose threads open sessions of their
    own): the enterprise's id and USCC, the batch's id."""
    with pg_app.app_context():
        enterprise = _enterprise(Factory(pg_app))
        batch = _batch()
        db.session.commit()
        found = enterprise.id, enterprise.uscc, batch.id
        db.session.remove()
    return found


def _enterprise(factory: Factory) -> Enterprise:
    account = factory.enterprise()
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == account.organization_id)
    )
    assert enterprise is not None
    return enterprise


def _record(enterprise_id: int, batch_id: int, uscc: str, period: str = "2026-09") -> dict:
    return {
        "uscc": uscc, "period": period, "tax_type": "VAT", "amount_paid": 1, "declared_sales": 2,
        "late_filing": False, "arrears": 0, "enterprise_id": enterprise_id, "provider": "p",
        "batch_id": batch_id, "version": 1, "content_hash": "0" * 64, "received_at": NOW,
    }  # fmt: skip


def _insert(*records: dict) -> None:
    db.session.execute(sa.insert(TaxRecord.__table__), list(records))
    db.session.flush()


def _tax_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(TaxRecord)) or 0


def test_a_record_of_an_unknown_enterprise_or_batch_is_refused(pg):
    factory = pg
    enterprise = _enterprise(factory)
    batch = _batch()
    db.session.commit()
    good = _record(enterprise.id, batch.id, enterprise.uscc)
    for bad, missing in (
        (_record(enterprise.id + 999, batch.id, enterprise.uscc, "2026-08"), "enterprise"),
        (_record(enterprise.id, batch.id + 999, enterprise.uscc, "2026-08"), "batch"),
    ):
        with pytest.raises(sa.exc.IntegrityError) as caught:
            _insert(good, bad)  # one bad row refuses the whole statement
        assert missing in str(caught.value)
        db.session.rollback()
    assert _tax_count() == 0
    _insert(good)
    db.session.commit()
    assert _tax_count() == 1


def test_a_record_cannot_be_moved_to_an_unknown_enterprise(pg):
    factory = pg
    enterprise = _enterprise(factory)
    batch = _batch()
    _insert(_record(enterprise.id, batch.id, enterprise.uscc))
    db.session.commit()
    with pytest.raises(sa.exc.IntegrityError):
        db.session.execute(sa.update(TaxRecord).values(enterprise_id=enterprise.id + 999))
        db.session.flush()
    db.session.rollback()
    assert db.session.scalar(sa.select(TaxRecord.enterprise_id)) == enterprise.id


def test_an_enterprise_or_batch_named_by_records_cannot_be_deleted(pg):
    factory = pg
    enterprise = _enterprise(factory)
    spare = _enterprise(factory)
    batch = _batch()
    empty_batch = _batch("empty")
    _insert(_record(enterprise.id, batch.id, enterprise.uscc))
    db.session.commit()
    for table, row_id in (
        (Enterprise.__table__, enterprise.id),
        (IngestionBatch.__table__, batch.id),
    ):
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(sa.delete(table).where(table.c.id == row_id))
            db.session.flush()
        db.session.rollback()
    # Neither is gone; rows nobody names can still be deleted.
    assert db.session.get(Enterprise, enterprise.id) is not None
    assert db.session.get(IngestionBatch, batch.id) is not None
    db.session.execute(sa.delete(IngestionBatch).where(IngestionBatch.id == empty_batch.id))
    db.session.execute(sa.delete(Enterprise).where(Enterprise.id == spare.id))
    db.session.commit()
    assert db.session.get(Enterprise, spare.id) is None


def test_every_record_table_checks_its_references(pg):
    """The rule covers all six tables (a new source table must get it too), and the foreign
    keys it replaces are gone (else every row would still be checked one by one)."""
    assert not [
        fk
        for model in RECORD_MODELS.values()
        for fk in sa.inspect(db.engine).get_foreign_keys(model.__tablename__)
        if fk["referred_table"] in ("enterprise", "ingestion_batch")
    ]
    triggers = set(
        db.session.scalars(
            sa.text(
                "SELECT c.relname || ':' || t.tgname FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
            )
        )
    )
    for table in (m.__tablename__ for m in RECORD_MODELS.values()):
        assert {f"{table}:{table}_references_insert", f"{table}:{table}_references_update"} <= (
            triggers
        )


def test_deleting_an_enterprise_while_its_records_arrive_keeps_no_orphan(pg_app):
    """Transaction A stores records of an enterprise and holds on; B deletes the enterprise:
    B waits for A (the enterprise is locked as a foreign key would lock it) and then fails,
    because A's records now name it."""
    enterprise_id, uscc, batch_id = _committed_enterprise_and_batch(pg_app)
    stored = threading.Event()
    outcome: dict[str, object] = {}

    def deleter() -> None:
        stored.wait(10)
        with pg_app.app_context():
            started = time.monotonic()
            try:
                db.session.execute(sa.delete(Enterprise).where(Enterprise.id == enterprise_id))
                db.session.commit()
                outcome["delete"] = "deleted"
            except sa.exc.IntegrityError:
                db.session.rollback()
                outcome["delete"] = "refused"
            outcome["waited"] = time.monotonic() - started
            db.session.remove()

    thread = threading.Thread(target=deleter)
    thread.start()
    with pg_app.app_context():
        _insert(_record(enterprise_id, batch_id, uscc))
        stored.set()
        time.sleep(0.5)  # the deleter is now waiting on the enterprise's row
        db.session.commit()
        db.session.remove()
    thread.join(20)
    assert outcome["delete"] == "refused"
    assert outcome["waited"] >= 0.3
    with pg_app.app_context():
        assert db.session.get(Enterprise, enterprise_id) is not None
        assert _tax_count() == 1
        db.session.remove()


def test_the_refusal_names_the_missing_key_and_constraint_as_a_foreign_key_would(pg):
    """Among many rows naming several enterprises, the one enterprise (or batch) that does
    not exist is named in the error's detail, with the foreign key's constraint name."""
    factory = pg
    enterprises = [_enterprise(factory) for _ in range(3)]
    batch_id = _batch().id
    db.session.commit()
    rows = [
        _record(e.id, batch_id, e.uscc, f"2026-{month:02d}")
        for e in enterprises
        for month in range(1, 10)
    ]
    missing = max(e.id for e in enterprises) + 1000
    for bad, column, parent, key in (
        ({**rows[4], "enterprise_id": missing}, "enterprise_id", "enterprise", missing),
        ({**rows[4], "batch_id": batch_id + 1000}, "batch_id", "ingestion_batch", batch_id + 1000),
    ):
        with pytest.raises(sa.exc.IntegrityError) as caught:
            _insert(*rows[:4], bad, *rows[5:])
        error = caught.value.orig
        assert error.sqlstate == "23503"
        assert error.diag.constraint_name == f"fk_tax_{column}_{parent}"
        assert error.diag.message_detail == (
            f'Key ({column})=({key}) is not present in table "{parent}".'
        )
        db.session.rollback()
    _insert(*rows)
    # A statement that changes no row checks nothing and passes.
    db.session.execute(sa.update(TaxRecord).where(TaxRecord.id < 0).values(version=2))
    db.session.commit()
    assert _tax_count() == len(rows)


def test_records_of_an_enterprise_deleted_while_their_check_waits_are_refused(pg_app):
    """B deletes an enterprise no record names yet and holds on; A stores records naming
    it: A's check waits for B's lock, and once B commits, A finds the enterprise gone."""
    enterprise_id, uscc, batch_id = _committed_enterprise_and_batch(pg_app)
    deleting = threading.Event()
    outcome: dict[str, object] = {}

    def inserter() -> None:
        deleting.wait(10)
        with pg_app.app_context():
            started = time.monotonic()
            try:
                _insert(_record(enterprise_id, batch_id, uscc))
                db.session.commit()
                outcome["insert"] = "stored"
            except sa.exc.IntegrityError as exc:
                db.session.rollback()
                outcome["insert"] = exc.orig.diag.constraint_name
            outcome["waited"] = time.monotonic() - started
            db.session.remove()

    thread = threading.Thread(target=inserter)
    thread.start()
    with pg_app.app_context():
        db.session.execute(sa.delete(Enterprise).where(Enterprise.id == enterprise_id))
        db.session.flush()
        deleting.set()
        time.sleep(0.5)  # the inserter's check now waits on the enterprise's row
        db.session.commit()
        db.session.remove()
    thread.join(20)
    assert outcome["insert"] == "fk_tax_enterprise_id_enterprise"
    assert outcome["waited"] >= 0.3
    with pg_app.app_context():
        assert _tax_count() == 0
        db.session.remove()
