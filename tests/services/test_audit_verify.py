"""The chain's verification as a job: the chain split into ranges checked on their own, and
the job's report naming the first problem of the whole chain, as the single pass does."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask

from app import jobs
from app.extensions import db
from app.services import audit, audit_verify
from models import AuditEvent, Job, JobChunk, JobStatus


def _append(n: int) -> None:
    for i in range(n):
        audit.record("test.event", actor=None, details={"i": i})
    db.session.commit()


def _verified(app: Flask) -> tuple[Job, audit.ChainReport | None]:
    job_id = audit_verify.start(None).id
    db.session.commit()  # the eager runner runs it now
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    return job, audit_verify.report_of(job)


@pytest.fixture
def small_ranges(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "AUDIT_VERIFY_CHUNK", 3)


def test_an_intact_chain_is_verified_in_ranges(app: Flask, app_ctx: Flask, small_ranges) -> None:
    _append(10)
    job, report = _verified(app)
    assert job.status is JobStatus.SUCCEEDED and (job.steps_done, job.steps_total) == (10, 10)
    assert report == audit.ChainReport(True, 10)
    ranges = db.session.scalars(
        sa.select(JobChunk.payload).where(JobChunk.job_id == job.id).order_by(JobChunk.index)
    ).all()
    assert [(r["first"], r["last"]) for r in ranges] == [(1, 3), (4, 6), (7, 9), (10, 10)]


@pytest.mark.parametrize(
    ("change", "seq", "words", "single_seq"),
    [
        ("edit 5", 5, "edited", 5),  # inside a range
        ("edit 7", 7, "edited", 7),  # the first of a range
        # the last of a range: the range names the missing event itself, where the single
        # pass names the next one, which jumps
        ("delete 6", 6, "events 6 to 6 are missing", 7),
        ("delete 7", 8, "jumps from 6 to 8", 8),  # the first of a range
        ("delete 2", 3, "jumps from 1 to 3", 3),
    ],
)
def test_the_first_problem_of_the_chain_is_named(
    app: Flask, app_ctx: Flask, small_ranges, change: str, seq: int, words: str, single_seq: int
) -> None:
    _append(10)
    action, target = change.split()
    if action == "edit":
        db.session.execute(
            sa.update(AuditEvent).where(AuditEvent.seq == int(target)).values(action="forged")
        )
    else:
        db.session.execute(sa.delete(AuditEvent).where(AuditEvent.seq == int(target)))
    # a second problem further on: the report names the first
    db.session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 10).values(action="forged"))
    db.session.commit()
    job, report = _verified(app)
    assert report is not None and not report.ok, job.result
    assert report.first_broken_seq == seq and words in (report.problem or "")
    assert report.checked == seq - 1
    single = audit.verify()
    assert not single.ok and single.first_broken_seq == single_seq


def test_a_second_click_while_it_runs_is_the_same_job(app_ctx: Flask, monkeypatch) -> None:
    monkeypatch.setattr(jobs.EagerRunner, "submit", lambda self, app, job_id: None)
    _append(2)
    first = audit_verify.start(None)
    db.session.commit()
    assert audit_verify.start(None).id == first.id
    assert audit_verify.report_of(first) is None  # still queued: no report yet


def test_the_report_is_worded_in_the_pages_language(app: Flask, app_ctx: Flask) -> None:
    from flask import render_template
    from flask_babel import force_locale

    _append(4)
    db.session.execute(sa.delete(AuditEvent).where(AuditEvent.seq == 2))
    db.session.commit()
    job, report = _verified(app)
    assert report is not None and report.kind == "jump" and report.numbers == (1, 3)
    with app.test_request_context(), force_locale("zh"):
        zh = render_template("office/_audit_verify.html", job=job, report=report)
    with app.test_request_context(), force_locale("en"):
        en = render_template("office/_audit_verify.html", job=job, report=report)
    assert "序号从 1 跳到 3（有事件被删除）" in zh and "jumps" not in zh
    assert "the sequence jumps from 1 to 3 (events deleted)" in en
