"""The audit chain detects edits, deletions and reordering at the exact event."""

import threading

import sqlalchemy as sa

from app.extensions import db
from app.services import audit
from models import AuditEvent


def _append(n):
    for i in range(n):
        audit.record("test.event", actor=None, details={"i": i})
    db.session.commit()


def test_intact_chain_verifies(app_ctx, runner):
    _append(5)
    report = audit.verify()
    assert report.ok and report.checked == 5
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "5 events verified" in result.output


def test_edited_event_is_named(app_ctx, runner):
    _append(5)
    db.session.execute(
        sa.update(AuditEvent).where(AuditEvent.seq == 3).values(action="test.forged")
    )
    db.session.commit()
    report = audit.verify()
    assert not report.ok and report.first_broken_seq == 3 and "edited" in report.problem
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and "seq=3" in result.output


def test_edited_details_are_detected(app_ctx):
    _append(4)
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 2).values(details={"i": 99}))
    db.session.commit()
    assert audit.verify().first_broken_seq == 2


def test_deleted_event_is_detected_at_the_gap(app_ctx):
    _append(5)
    db.session.execute(sa.delete(AuditEvent).where(AuditEvent.seq == 3))
    db.session.commit()
    report = audit.verify()
    assert not report.ok and report.first_broken_seq == 4 and "deleted" in report.problem


def test_reordered_events_are_detected(app_ctx):
    _append(5)
    # Swap the sequence numbers of events 2 and 3 (through a free value).
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 2).values(seq=1000))
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 3).values(seq=2))
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 1000).values(seq=3))
    db.session.commit()
    report = audit.verify()
    assert not report.ok and report.first_broken_seq == 2


def test_deleting_the_last_event_leaves_a_shorter_valid_chain_but_new_events_continue(app_ctx):
    _append(3)
    assert audit.verify().checked == 3


def _run_together(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_appends_keep_one_chain_on_postgresql(pg_app):
    """Eight writers at once (SQLite has one writer by design; production runs PostgreSQL)."""

    def worker():
        with pg_app.app_context():
            for i in range(20):
                audit.record("test.concurrent", actor=None, details={"i": i})
                db.session.commit()
            db.session.remove()

    _run_together([threading.Thread(target=worker) for _ in range(8)])
    with pg_app.app_context():
        report = audit.verify()
        assert report.ok and report.checked == 160
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 160


def test_a_batch_is_appended_in_order_and_chained(app_ctx):
    _append(2)
    events = audit.record_many(
        [audit.Entry("test.batch", None, details={"i": i}) for i in range(3)]
    )
    db.session.commit()
    assert [e.seq for e in events] == [3, 4, 5]
    assert [e.details["i"] for e in events] == [0, 1, 2]
    assert events[1].prev_hash == events[0].hash and events[2].prev_hash == events[1].hash
    assert audit.verify().checked == 5
    assert audit.record_many([]) == []


def test_concurrent_batches_and_single_events_keep_one_chain_on_postgresql(pg_app):
    """Batches from four writers and single events from four others: one chain, and each
    batch's events stay together, one after the other."""

    def batches(writer):
        with pg_app.app_context():
            for n in range(10):
                entries = [
                    audit.Entry("test.batch", None, details={"w": writer, "n": n, "k": k})
                    for k in range(3)
                ]
                audit.record_many(entries)
                db.session.commit()
            db.session.remove()

    def singles():
        with pg_app.app_context():
            for i in range(20):
                audit.record("test.single", actor=None, details={"i": i})
                db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=batches, args=(w,)) for w in range(4)]
    _run_together([*threads, *(threading.Thread(target=singles) for _ in range(4))])
    with pg_app.app_context():
        report = audit.verify()
        assert report.ok and report.checked == 4 * 10 * 3 + 4 * 20
        rows = db.session.execute(
            sa.select(AuditEvent.seq, AuditEvent.details)
            .where(AuditEvent.action == "test.batch")
            .order_by(AuditEvent.seq)
        ).all()
        for first in range(0, len(rows), 3):
            group = rows[first : first + 3]
            assert [r.seq for r in group] == [group[0].seq + k for k in range(3)]
            assert [r.details["k"] for r in group] == [0, 1, 2]
            assert len({(r.details["w"], r.details["n"]) for r in group}) == 1
