"""Background jobs: one interface, ``enqueue(kind, **params) -> Job``, whatever runs them.

A job is a :class:`models.Job` row (kind, parameters, progress, outcome) plus a body
registered under its kind with :func:`job_body`. ``enqueue`` adds the row to the caller's
transaction; the job is handed to the runner only **after that transaction commits** (if it
rolls back, there is no job and nothing runs), so a job never sees a half-made change.

Runners (``JOBS_BACKEND``):

``inprocess`` (the embedded default)
    a small thread pool in the web process (``JOBS_WORKERS`` threads, default 2); with
    ``JOBS_EAGER`` (default: on when ``TESTING``) the job runs synchronously, right after
    the commit, in its own application context and database session.

A Celery backend (issue 8) slots in as another :class:`Runner` whose ``submit`` sends
``job_id`` to a task that calls :func:`run`; callers do not change. :func:`run` is safe to
call more than once for the same job (a job that is no longer queued is left alone), which
is what at-least-once delivery needs.

Bodies take the :class:`Job` and report progress on it (``steps_done``, ``result``); they may
commit as they go, so a poller sees progress. An exception marks the job failed, with its
message, after rolling back what the body had not committed.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import sqlalchemy as sa
from flask import Flask, current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import event
from sqlalchemy.orm import Session

from models import Job, JobStatus, db
from models.base import utcnow

log = logging.getLogger(__name__)

JobBody = Callable[[Job], None]
_bodies: dict[str, JobBody] = {}
# Where each kind's body is defined, so a worker that has not imported it yet finds it.
BODY_MODULES = {
    "collection": "app.services.collection",
    "profiles.recompute": "app.services.profiles",
    "models.rescore": "app.services.model_monitoring",
}
_PENDING = "xinyidai_pending_jobs"


class UnknownJobKind(LookupError):
    pass


def job_body(kind: str) -> Callable[[JobBody], JobBody]:
    """Register the function that does the work of jobs of ``kind``."""

    def register(body: JobBody) -> JobBody:
        _bodies[kind] = body
        return body

    return register


class Runner(Protocol):
    def submit(self, app: Flask, job_id: int) -> None:
        """Arrange for :func:`run` to be called for ``job_id`` (now or soon)."""
        ...


class EagerRunner:
    """Runs the job at once, in the calling thread (tests, ``JOBS_EAGER``)."""

    def submit(self, app: Flask, job_id: int) -> None:
        run(app, job_id)


class ThreadRunner:
    """Runs jobs on a small pool of threads in this process (the embedded default)."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xinyidai-job")

    def submit(self, app: Flask, job_id: int) -> None:
        self._pool.submit(run, app, job_id)


_thread_runners: dict[int, ThreadRunner] = {}
_runner_lock = threading.Lock()


def runner_for(app: Flask) -> Runner:
    backend = app.config.get("JOBS_BACKEND", "inprocess")
    if backend != "inprocess":
        raise ValueError(f"JOBS_BACKEND={backend!r}: this build runs jobs 'inprocess'")
    if app.config.get("JOBS_EAGER", app.config.get("TESTING", False)):
        return EagerRunner()
    workers = int(app.config.get("JOBS_WORKERS", 2))
    with _runner_lock:
        runner = _thread_runners.get(workers)
        if runner is None:
            runner = _thread_runners[workers] = ThreadRunner(workers)
        return runner


def enqueue(
    kind: str,
    *,
    enterprise_id: int | None = None,
    authorization_id: int | None = None,
    steps_total: int = 0,
    **params: Any,
) -> Job:
    """Record a queued job (flushed, so it has an id) that runs once the caller commits.

    ``params`` must be JSON-serializable. Raises :class:`UnknownJobKind` for a kind with no
    registered body.
    """
    if _body(kind) is None:
        raise UnknownJobKind(f"no job body is registered for {kind!r}")
    job = Job(
        kind=kind,
        enterprise_id=enterprise_id,
        authorization_id=authorization_id,
        steps_total=steps_total,
        params=params,
        status=JobStatus.QUEUED,
    )
    db.session.add(job)
    db.session.flush()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    db.session().info.setdefault(_PENDING, []).append((app, job.id))
    return job


@event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    for app, job_id in pending or ():
        runner_for(app).submit(app, job_id)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def fail_stale(older_than: dt.timedelta, now: dt.datetime | None = None) -> int:
    """Mark jobs still queued or running ``older_than`` after they were created as failed
    (the process running them stopped: a deploy, a crash), so nobody waits for them. Run
    it from cron (``flask jobs fail-stale``) with a margin above the longest job. Returns
    how many jobs it marked."""
    now = now or utcnow()
    with force_locale(current_app.config.get("BABEL_DEFAULT_LOCALE", "zh")):
        message = str(_l("Interrupted: the process running this job stopped. Start it again."))
    result = db.session.execute(
        sa.update(Job)
        .where(
            Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
            Job.created_at < now - older_than,
        )
        .values(status=JobStatus.FAILED, message=message, finished_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _body(kind: str) -> JobBody | None:
    if kind not in _bodies and kind in BODY_MODULES:
        importlib.import_module(BODY_MODULES[kind])
    return _bodies.get(kind)


def run(app: Flask, job_id: int) -> None:
    """Run one queued job to its end in a fresh application context and session."""
    with app.app_context():
        try:
            _run(job_id)
        finally:
            db.session.remove()


def _run(job_id: int) -> None:
    claimed = db.session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.RUNNING, started_at=utcnow(), attempts=Job.attempts + 1)
    )
    db.session.commit()
    if getattr(claimed, "rowcount", 0) != 1:
        return  # already taken by another worker, or finished
    job = db.session.get(Job, job_id)
    if job is None:
        return
    body = _body(job.kind)
    try:
        if body is None:
            raise UnknownJobKind(f"no job body is registered for {job.kind!r}")
        body(job)
    except Exception as exc:
        log.exception("job %s (%s) failed", job_id, job.kind)
        db.session.rollback()
        job = db.session.get(Job, job_id)
        if job is None:
            return
        job.status = JobStatus.FAILED
        job.message = job.message or f"{type(exc).__name__}: {exc}"
        job.finished_at = utcnow()
        db.session.commit()
        return
    if job.status is JobStatus.RUNNING:
        job.status = JobStatus.SUCCEEDED
    job.finished_at = job.finished_at or utcnow()
    db.session.commit()
