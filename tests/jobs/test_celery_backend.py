"""JOBS_BACKEND=celery: the same ``jobs.enqueue`` runs on a real Celery worker over Redis, the
chunks spread as tasks; with Redis away the web keeps serving and the job waits, queued, with
a clear message, until the reaper sends it again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from celery.contrib.testing.worker import start_worker
from flask import Flask
from flask.testing import FlaskClient

from app import celery_app, jobs
from app.extensions import db
from app.services import profiles
from models import ChunkStatus, CreditProfile, Enterprise, Job, JobChunk, JobStatus
from tests.conftest import Factory
from tests.jobs.conftest import free_port


@pytest.fixture
def celery_backend(app: Flask, redis_url: str, monkeypatch) -> Iterator[str]:
    monkeypatch.setitem(app.config, "JOBS_BACKEND", "celery")
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", redis_url)
    celery_app.bind(app)
    yield redis_url


def wait_for(job_id: int, timeout: float = 30) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        assert job is not None
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return job
        db.session.rollback()
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def test_a_job_runs_on_a_celery_worker_chunk_by_chunk(
    app: Flask, app_ctx: Flask, factory: Factory, celery_backend: str, monkeypatch
) -> None:
    for _ in range(5):
        factory.enterprise()
    db.session.execute(sa.delete(CreditProfile))
    db.session.commit()
    monkeypatch.setattr(profiles, "CHUNK", 2)
    assert isinstance(jobs.runner_for(app), jobs.CeleryRunner)
    with start_worker(celery_app.celery, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        job_id = profiles.enqueue_recompute(None, trigger="rescore").id
        db.session.commit()
        job = wait_for(job_id)
    assert job.status is JobStatus.SUCCEEDED, job.message
    assert (job.steps_done, job.steps_total) == (5, 5)
    chunks = db.session.scalars(sa.select(JobChunk).where(JobChunk.job_id == job_id)).all()
    assert len(chunks) == 3 and all(c.status is ChunkStatus.DONE for c in chunks)
    assert all(c.claimed_by and c.claimed_by.count(":") >= 2 for c in chunks)
    counts = dict(
        db.session.execute(
            sa.select(CreditProfile.enterprise_id, sa.func.count())
            .group_by(CreditProfile.enterprise_id)
        ).all()
    )  # fmt: skip
    assert counts == dict.fromkeys(db.session.scalars(sa.select(Enterprise.id)).all(), 1)


def test_with_redis_down_the_web_serves_and_the_job_waits_for_the_reaper(
    app: Flask, client: FlaskClient, factory: Factory, redis_url: str, monkeypatch
) -> None:
    factory.enterprise()
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    monkeypatch.setitem(app.config, "JOBS_BACKEND", "celery")
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", down)
    celery_app.bind(app)
    with app.app_context():
        started = time.monotonic()
        job_id = profiles.enqueue_recompute(None, trigger="rescore").id
        db.session.commit()  # the send fails after the commit: no exception reaches the caller
        assert time.monotonic() - started < 10, "the web does not hang on a dead broker"
        job = db.session.get(Job, job_id)
        assert job is not None
        assert job.status is JobStatus.QUEUED
        assert job.message == "队列暂不可用：队列恢复后任务将开始。"
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["status"] == "ok"
    assert client.get("/auth/login").status_code == 200
    # Redis is back: the reaper (beat) sends the waiting job and a worker runs it.
    monkeypatch.setitem(app.config, "CELERY_BROKER_URL", redis_url)
    celery_app.bind(app)
    with (
        app.app_context(),
        start_worker(celery_app.celery, pool="solo", perform_ping_check=False, loglevel="WARNING"),
    ):
        import datetime as dt

        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        assert jobs.reap(app, later).jobs_resent == [job_id]
        done = wait_for(job_id)
        assert done.status is JobStatus.SUCCEEDED and done.message is None
