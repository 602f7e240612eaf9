"""The job runner: jobs run only after the caller commits, in their own session; a failing
body marks the job failed; the thread runner of the embedded default."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa

from app import jobs
from app.extensions import db
from models import Job, JobStatus

ran: list[int] = []


@jobs.job_body("test-echo")
def _echo(job: Job) -> None:
    ran.append(job.id)
    job.steps_done = job.steps_total
    job.result = {"echo": job.params["text"]}


@jobs.job_body("test-explode")
def _explode(job: Job) -> None:
    job.steps_done = 1
    raise RuntimeError("provider exploded")


@pytest.fixture(autouse=True)
def _forget_runs():
    ran.clear()


def fetch(job_id: int) -> Job:
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    return job


def test_a_job_runs_after_the_commit_in_its_own_session(app_ctx):
    job = jobs.enqueue("test-echo", steps_total=3, text="你好")
    assert job.status is JobStatus.QUEUED
    assert ran == [], "nothing runs before the caller commits"
    db.session.commit()
    assert ran == [job.id]
    done = fetch(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"echo": "你好"} and done.steps_done == 3
    assert done.attempts == 1 and done.finished_at is not None


def test_a_rolled_back_job_never_runs(app_ctx):
    job_id = jobs.enqueue("test-echo", text="x").id
    db.session.rollback()
    db.session.commit()
    assert ran == []
    assert db.session.get(Job, job_id) is None


def test_a_failing_body_marks_the_job_failed_with_its_message(app_ctx):
    job = jobs.enqueue("test-explode", steps_total=2)
    db.session.commit()
    failed = fetch(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.message == "RuntimeError: provider exploded"
    assert failed.steps_done == 0, "the body's uncommitted progress was rolled back"


def test_running_a_finished_job_again_does_nothing(app, app_ctx):
    job = jobs.enqueue("test-echo", text="once")
    db.session.commit()
    jobs.run(app, job.id)  # a redelivered message, as a queue may do
    assert ran == [job.id]
    assert fetch(job.id).attempts == 1


def test_unknown_kinds_are_refused(app_ctx):
    with pytest.raises(jobs.UnknownJobKind):
        jobs.enqueue("no-such-kind")


def test_the_thread_runner_runs_jobs_in_the_background(app, app_ctx, monkeypatch):
    monkeypatch.setitem(app.config, "JOBS_EAGER", False)
    assert isinstance(jobs.runner_for(app), jobs.ThreadRunner)
    job_id = jobs.enqueue("test-echo", text="bg").id
    db.session.commit()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = db.session.scalar(sa.select(Job.status).where(Job.id == job_id))
        db.session.rollback()
        if status is JobStatus.SUCCEEDED:
            break
        time.sleep(0.02)
    assert fetch(job_id).result == {"echo": "bg"}


def test_unknown_backends_are_named_in_the_error(app, monkeypatch):
    monkeypatch.setitem(app.config, "JOBS_BACKEND", "rabbit")
    with pytest.raises(ValueError, match="JOBS_BACKEND='rabbit'"):
        jobs.runner_for(app)


def test_stale_jobs_are_marked_failed_so_nobody_waits_forever(app, app_ctx, runner):
    old = Job(kind="test-echo", status=JobStatus.RUNNING, params={})
    fresh = Job(kind="test-echo", status=JobStatus.QUEUED, params={})
    done = Job(kind="test-echo", status=JobStatus.SUCCEEDED, params={})
    db.session.add_all([old, fresh, done])
    db.session.flush()
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    db.session.execute(
        sa.update(Job).where(Job.id.in_([old.id, done.id])).values(created_at=long_ago)
    )
    db.session.commit()
    result = runner.invoke(args=["jobs", "fail-stale", "--minutes", "60"])
    assert result.exit_code == 0, result.output
    assert "Marked 1 interrupted job(s) failed." in result.output
    assert fetch(old.id).status is JobStatus.FAILED
    assert fetch(old.id).message == "已中断：运行此任务的进程已停止。请重新开始。"
    assert fetch(fresh.id).status is JobStatus.QUEUED
    assert fetch(done.id).status is JobStatus.SUCCEEDED
