"""Background jobs: one interface, ``enqueue(kind, **params) -> Job``, whatever runs them.

A job is a :class:`models.Job` row (kind, parameters, progress, outcome) plus a body
registered under its kind. ``enqueue`` adds the row to the caller's transaction; the job is
handed to the runner only **after that transaction commits** (if it rolls back, there is no
job and nothing runs), so a job never sees a half-made change.

Two kinds of body:

:func:`job_body`
    one function does the whole job (collection of one grant: a few scopes in sequence).
:func:`chunked_job`
    the work is split in chunks recorded in the database (:class:`models.JobChunk`: job,
    index, payload, size, status, attempts, claimed_by, heartbeat_at, finished_at). A
    ``plan`` function lists the chunks when the job starts; each chunk is then claimed,
    done and finished **in one transaction with its own output**, fenced by the claim
    (``claimed_by``), so a chunk's work is committed exactly once even when it is done twice.
    Progress (``steps_done`` of ``steps_total``) is the size of the finished chunks over the
    size of all of them. The job succeeds when its last chunk finishes; a chunk failing
    ``JOBS_CHUNK_ATTEMPTS`` times fails the job with its message.

Runners (``JOBS_BACKEND``):

``thread`` (the embedded default; ``inprocess`` is its old name)
    a small thread pool in the web process (``JOBS_WORKERS`` threads, default 2); chunks run
    one after the other in the job's thread.
``eager`` (tests; also ``JOBS_EAGER`` or ``TESTING`` with the thread backend)
    the job runs synchronously right after the commit, in its own application context and
    database session.
``celery`` (production)
    the job id is sent to Celery on Redis (``CELERY_BROKER_URL``); a worker plans the
    chunks and sends one task per chunk, so every worker shares the work
    (:mod:`app.celery_app`). Tasks are ``acks_late``. When the broker cannot be reached
    the web keeps serving: the job stays queued with the message "queue unavailable" and
    the reaper sends it again.

The reaper (:func:`reap`; Celery beat every minute, or ``flask jobs reap``) does not rely on
broker redelivery: a running chunk whose worker stopped heart-beating for
``JOBS_CHUNK_TIMEOUT`` seconds goes back to pending and is sent again, as are pending chunks
and queued jobs whose message was lost. :func:`run` and :func:`run_chunk` are safe to call
more than once (a job no longer queued, a chunk no longer pending is left alone).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from flask import Flask, current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import event
from sqlalchemy.orm import Session

from models import ChunkStatus, Job, JobChunk, JobStatus, db
from models.base import utcnow

log = logging.getLogger(__name__)

JobBody = Callable[[Job], None]
ChunkPlan = Callable[[Job], Sequence[tuple[dict[str, Any], int]]]
ChunkWork = Callable[[Job, dict[str, Any]], dict[str, Any]]
ChunkFinish = Callable[[Job, list[dict[str, Any]]], None]


@dataclass(frozen=True)
class ChunkedKind:
    plan: ChunkPlan
    work: ChunkWork
    finish: ChunkFinish | None = None


_bodies: dict[str, JobBody] = {}
_chunked: dict[str, ChunkedKind] = {}
# Where each kind's body is defined, so a worker that has not imported it yet finds it.
BODY_MODULES = {
    "collection": "app.services.collection",
    "profiles.recompute": "app.services.profiles",
    "models.rescore": "app.services.model_monitoring",
    "ingestion.bulk": "app.services.bulk_jobs",
    "matching.batch": "app.services.bulk_jobs",
    "audit.verify": "app.services.audit_verify",
    "pool.simulation": "app.services.pool_simulation",
}
BACKENDS = ("eager", "thread", "celery")
_PENDING = "xinyidai_pending_jobs"
QUEUE_UNAVAILABLE = _l("Queue unavailable: the job will start when the queue is back.")


class UnknownJobKind(LookupError):
    pass


def job_body(kind: str) -> Callable[[JobBody], JobBody]:
    """Register the function that does the whole work of jobs of ``kind``."""

    def register(body: JobBody) -> JobBody:
        _bodies[kind] = body
        return body

    return register


def chunked_job(
    kind: str, *, plan: ChunkPlan, finish: ChunkFinish | None = None
) -> Callable[[ChunkWork], ChunkWork]:
    """Register a chunked kind: ``plan(job)`` returns ``(payload, size)`` per chunk (JSON
    payloads; called once, when the job starts), the decorated ``work(job, payload)`` does one
    chunk and returns its counts (JSON), flushing but never committing: its writes commit
    together with the chunk's "done". ``work`` must give the same outcome when done again
    (a chunk whose worker died is done again). ``finish(job, results)`` runs once, when the
    last chunk is done, in the same transaction that marks the job succeeded."""

    def register(work: ChunkWork) -> ChunkWork:
        _chunked[kind] = ChunkedKind(plan=plan, work=work, finish=finish)
        return work

    return register


class Runner(Protocol):
    def submit(self, app: Flask, job_id: int) -> None:
        """Arrange for :func:`run` to be called for ``job_id`` (now or soon)."""
        ...

    def submit_chunks(self, app: Flask, chunk_ids: Sequence[int]) -> None:
        """Arrange for :func:`run_chunk` to be called for each chunk (now or soon)."""
        ...


class EagerRunner:
    """Runs the job at once, in the calling thread (tests, ``JOBS_EAGER``)."""

    def submit(self, app: Flask, job_id: int) -> None:
        run(app, job_id)

    def submit_chunks(self, app: Flask, chunk_ids: Sequence[int]) -> None:
        for chunk_id in chunk_ids:
            run_chunk(app, chunk_id)


class ThreadRunner(EagerRunner):
    """Runs jobs on a small pool of threads in this process (the embedded default); a job's
    chunks run one after the other in its thread (SQLite has one writer anyway)."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xinyidai-job")

    def submit(self, app: Flask, job_id: int) -> None:
        self._pool.submit(run, app, job_id)

    def submit_chunks(self, app: Flask, chunk_ids: Sequence[int]) -> None:
        self._pool.submit(EagerRunner.submit_chunks, self, app, list(chunk_ids))


class CeleryRunner:
    """Sends jobs and chunks to the Celery workers (:mod:`app.celery_app`). A broker that
    cannot be reached leaves the job queued (message "queue unavailable") for the reaper."""

    def submit(self, app: Flask, job_id: int) -> None:
        from app import celery_app

        try:
            celery_app.send_job(app, job_id)
        except Exception as exc:
            log.warning("job %s: queue unavailable (%s); left queued for the reaper", job_id, exc)
            _mark_unavailable(app, job_id)

    def submit_chunks(self, app: Flask, chunk_ids: Sequence[int]) -> None:
        from app import celery_app

        try:
            celery_app.send_chunks(app, list(chunk_ids))
        except Exception as exc:  # the chunks stay pending: the reaper sends them again
            log.warning("chunks %s: queue unavailable (%s)", list(chunk_ids), exc)


def _mark_unavailable(app: Flask, job_id: int) -> None:
    with app.app_context():
        with force_locale(app.config.get("BABEL_DEFAULT_LOCALE", "zh")):
            message = str(QUEUE_UNAVAILABLE)
        with db.engine.begin() as conn:  # own connection: this runs after the caller's commit
            conn.execute(
                sa.update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
                .values(message=message)
            )


_thread_runners: dict[int, ThreadRunner] = {}
_runner_lock = threading.Lock()


def backend_of(app: Flask) -> str:
    backend = str(app.config.get("JOBS_BACKEND") or "thread")
    backend = "thread" if backend == "inprocess" else backend
    if backend not in BACKENDS:
        raise ValueError(f"JOBS_BACKEND={backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "thread" and app.config.get("JOBS_EAGER", app.config.get("TESTING", False)):
        return "eager"
    return backend


def runner_for(app: Flask) -> Runner:
    backend = backend_of(app)
    if backend == "eager":
        return EagerRunner()
    if backend == "celery":
        return CeleryRunner()
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
    if not _known(kind):
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


@event.listens_for(Session, "after_transaction_end")
def _forget_after_rollback(session: Session, transaction: Any) -> None:
    """The transaction's jobs are forgotten when it ends without a commit (a commit sent them
    already) — the whole transaction, not a savepoint inside it: a job enqueued before a
    savepoint that rolls back is still sent when the transaction commits (one enqueued
    inside it no longer exists, and ``run`` ignores an id it cannot find)."""
    if transaction.parent is None:
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


def _load(kind: str) -> None:
    if kind not in _bodies and kind not in _chunked and kind in BODY_MODULES:
        importlib.import_module(BODY_MODULES[kind])


def _body(kind: str) -> JobBody | None:
    _load(kind)
    return _bodies.get(kind)


def _chunked_kind(kind: str) -> ChunkedKind | None:
    _load(kind)
    return _chunked.get(kind)


def _known(kind: str) -> bool:
    return _body(kind) is not None or _chunked_kind(kind) is not None


def run(app: Flask, job_id: int) -> None:
    """Run one queued job in a fresh application context and session: the whole body, or
    (chunked kinds) plan its chunks and hand them to the runner."""
    with app.app_context():
        try:
            chunk_ids = _run(job_id)
        finally:
            db.session.remove()
    if chunk_ids:
        runner_for(app).submit_chunks(app, chunk_ids)


def _fail(job_id: int, message: str) -> None:
    db.session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        .values(status=JobStatus.FAILED, message=message, finished_at=utcnow())
    )
    db.session.commit()


def _run(job_id: int) -> list[int]:
    job = db.session.get(Job, job_id)
    if job is None or job.status is not JobStatus.QUEUED:
        db.session.rollback()
        return []  # already taken by another worker, finished, or never committed
    chunked = _chunked_kind(job.kind)
    if chunked is not None:
        return _plan(job, chunked)
    if not _claim(job_id):
        return []
    db.session.commit()  # the claim, before the body runs (it may commit as it goes)
    job = db.session.get(Job, job_id)
    if job is None:
        return []
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
            return []
        job.status = JobStatus.FAILED
        job.message = job.message or f"{type(exc).__name__}: {exc}"
        job.finished_at = utcnow()
        db.session.commit()
        return []
    if job.status is JobStatus.RUNNING:
        job.status = JobStatus.SUCCEEDED
    job.finished_at = job.finished_at or utcnow()
    db.session.commit()
    return []


def _claim(job_id: int) -> bool:
    """Take a queued job (not committed): running, one attempt more, the queue's
    unavailability message cleared. False if it is no longer queued."""
    claimed = db.session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.RUNNING, started_at=utcnow(), attempts=Job.attempts + 1)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        db.session.rollback()
        return False
    db.session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.message.in_(sorted(_unavailable_messages())))
        .values(message=None)
    )
    return True


def _unavailable_messages() -> set[str]:
    found = set()
    for locale in ("zh", "en"):
        with force_locale(locale):
            found.add(str(QUEUE_UNAVAILABLE))
    return found


# ---------------------------------------------------------------------------------------------
# Chunks
# ---------------------------------------------------------------------------------------------
def _plan(job: Job, chunked: ChunkedKind) -> list[int]:
    """Plan a queued job's chunks, then claim the job and record its chunks in one
    transaction, and return the ids of those pending. A worker stopped before that commit
    (killed while planning) leaves the job queued, and the reaper sends it again; never
    running without chunks. Planning only reads, so it runs before the claim: nothing is
    locked meanwhile (on SQLite, the one write lock). A job with no chunk succeeds at once;
    a plan that raises fails the job with its message."""
    job_id = job.id
    try:
        planned = list(chunked.plan(job))
    except Exception as exc:
        log.exception("job %s (%s): planning failed", job_id, job.kind)
        db.session.rollback()
        _fail(job_id, f"{type(exc).__name__}: {exc}")
        return []
    if not _claim(job_id):
        return []  # another worker took it meanwhile: its plan counts
    existing = db.session.scalar(
        sa.select(sa.func.count()).select_from(JobChunk).where(JobChunk.job_id == job_id)
    )
    if not existing:
        now = utcnow()
        if planned:
            db.session.execute(
                sa.insert(JobChunk),
                [
                    {"job_id": job_id, "index": index, "payload": payload, "size": int(size),
                     "status": ChunkStatus.PENDING, "attempts": 0, "heartbeat_at": now,
                     "result": {}}
                    for index, (payload, size) in enumerate(planned)
                ],
            )  # fmt: skip
        total = sum(int(size) for _, size in planned)
        if total:  # chunks of size 0: the work reports its own progress (collection)
            db.session.execute(
                sa.update(Job).where(Job.id == job_id).values(steps_total=total, steps_done=0)
            )
    if not existing and not planned:
        # Nothing to do: claimed and completed in the one transaction (a finish that raises
        # fails the job with its message).
        try:
            _complete_if_done(job_id)
        except Exception as exc:
            log.exception("job %s (%s): completing it failed", job_id, job.kind)
            db.session.rollback()
            _fail(job_id, f"{type(exc).__name__}: {exc}")
        return []
    db.session.commit()
    return list(
        db.session.scalars(
            sa.select(JobChunk.id)
            .where(JobChunk.job_id == job_id, JobChunk.status == ChunkStatus.PENDING)
            .order_by(JobChunk.index)
        )
    )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Heartbeat:
    """Touches the chunk's ``heartbeat_at`` every ``interval`` seconds from a thread with its
    own connection while the chunk's work runs (a live but slow worker keeps its claim)."""

    def __init__(self, app: Flask, chunk_id: int, claim: str, interval: float) -> None:
        self._app, self._chunk_id, self._claim, self._interval = app, chunk_id, claim, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="xinyidai-beat")

    def __enter__(self) -> _Heartbeat:
        if self._interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        with self._app.app_context():
            while not self._stop.wait(self._interval):
                try:
                    with db.engine.begin() as conn:
                        conn.execute(
                            sa.update(JobChunk)
                            .where(JobChunk.id == self._chunk_id,
                                   JobChunk.claimed_by == self._claim)
                            .values(heartbeat_at=utcnow())
                        )  # fmt: skip
                except Exception:  # the database is away: the reaper may requeue; fine
                    log.warning("heartbeat of chunk %s failed", self._chunk_id, exc_info=True)


def run_chunk(app: Flask, chunk_id: int, worker: str | None = None) -> bool:
    """Claim, do and finish one pending chunk in a fresh application context. Returns
    whether this call finished it (False: not pending, lost its claim, or failed)."""
    with app.app_context():
        try:
            done, retry = _run_chunk(app, chunk_id, worker or worker_name())
        finally:
            db.session.remove()
    if retry:
        runner_for(app).submit_chunks(app, [chunk_id])
    return done


def claim_chunk(chunk_id: int, worker: str) -> str | None:
    """Take a pending chunk (committed); returns the claim token, None if not pending."""
    claim = f"{worker}:{uuid.uuid4().hex[:12]}"
    result = db.session.execute(
        sa.update(JobChunk)
        .where(JobChunk.id == chunk_id, JobChunk.status == ChunkStatus.PENDING)
        .values(status=ChunkStatus.RUNNING, claimed_by=claim, heartbeat_at=utcnow(),
                attempts=JobChunk.attempts + 1)
    )  # fmt: skip
    db.session.commit()
    return claim if getattr(result, "rowcount", 0) == 1 else None


def finish_chunk(chunk: JobChunk, claim: str, counts: dict[str, Any]) -> bool:
    """Mark the chunk done under ``claim`` and add its size to the job's progress, in the
    caller's transaction (with the chunk's output); False if the claim was lost (the reaper
    gave the chunk to another worker): then the caller rolls its output back."""
    result = db.session.execute(
        sa.update(JobChunk)
        .where(JobChunk.id == chunk.id, JobChunk.claimed_by == claim,
               JobChunk.status == ChunkStatus.RUNNING)
        .values(status=ChunkStatus.DONE, finished_at=utcnow(), result=counts, message=None)
    )  # fmt: skip
    if getattr(result, "rowcount", 0) != 1:
        return False
    db.session.execute(
        sa.update(Job).where(Job.id == chunk.job_id).values(steps_done=Job.steps_done + chunk.size)
    )
    return True


def _run_chunk(app: Flask, chunk_id: int, worker: str) -> tuple[bool, bool]:
    claim = claim_chunk(chunk_id, worker)
    if claim is None:
        return False, False
    chunk = db.session.get(JobChunk, chunk_id)
    job = db.session.get(Job, chunk.job_id) if chunk is not None else None
    if chunk is None or job is None:
        return False, False
    if job.status is not JobStatus.RUNNING:  # failed or finished meanwhile: nothing to do
        db.session.execute(
            sa.update(JobChunk)
            .where(JobChunk.id == chunk_id, JobChunk.claimed_by == claim)
            .values(status=ChunkStatus.FAILED, message="job no longer running")
        )
        db.session.commit()
        return False, False
    chunked = _chunked_kind(job.kind)
    interval = 0.0 if _eager(app) else float(app.config.get("JOBS_HEARTBEAT_SECONDS", 15))
    try:
        if chunked is None:
            raise UnknownJobKind(f"no chunked job is registered for {job.kind!r}")
        with _Heartbeat(app, chunk_id, claim, interval):
            counts = chunked.work(job, dict(chunk.payload))
        if not finish_chunk(chunk, claim, counts):
            db.session.rollback()
            log.warning("chunk %s: claim lost to the reaper; its work is discarded", chunk_id)
            return False, False
        db.session.commit()
    except Exception as exc:
        log.exception("chunk %s of job %s (%s) failed", chunk_id, job.id, job.kind)
        db.session.rollback()
        return False, _chunk_failed(app, chunk_id, claim, f"{type(exc).__name__}: {exc}")
    try:
        _complete_if_done(chunk.job_id)
    except Exception:  # the chunk is done; the reaper completes the job later
        log.exception("job %s: completing it failed; the reaper tries again", chunk.job_id)
        db.session.rollback()
    return True, False


def _eager(app: Flask) -> bool:
    return backend_of(app) == "eager"


def _chunk_failed(app: Flask, chunk_id: int, claim: str, message: str) -> bool:
    """Put the chunk back to pending for another try, or fail it and its job after
    ``JOBS_CHUNK_ATTEMPTS`` tries — only while this claim still holds it (the reaper may
    have handed it to another worker meanwhile). Returns whether to try again."""
    found = db.session.execute(
        sa.select(JobChunk.job_id, JobChunk.attempts).where(JobChunk.id == chunk_id)
    ).first()
    if found is None:
        return False
    job_id, attempts = found
    retry = attempts < int(app.config.get("JOBS_CHUNK_ATTEMPTS", 3))
    result = db.session.execute(
        sa.update(JobChunk)
        .where(JobChunk.id == chunk_id, JobChunk.claimed_by == claim,
               JobChunk.status == ChunkStatus.RUNNING)
        .values(status=ChunkStatus.PENDING if retry else ChunkStatus.FAILED, claimed_by=None,
                message=message, heartbeat_at=utcnow())
    )  # fmt: skip
    db.session.commit()
    if getattr(result, "rowcount", 0) != 1:
        return False
    if not retry:
        _fail(job_id, message)
    return retry


def _complete_if_done(job_id: int) -> bool:
    """Mark the job succeeded when none of its chunks is left (once: the update is
    conditional), sum the chunks' counts into ``result`` and run the kind's ``finish``."""
    left = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(JobChunk)
        .where(JobChunk.job_id == job_id, JobChunk.status != ChunkStatus.DONE)
    )
    if left:
        return False
    now = utcnow()
    result = db.session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(status=JobStatus.SUCCEEDED, finished_at=now)
    )
    if getattr(result, "rowcount", 0) != 1:
        db.session.rollback()
        return False
    job = db.session.get(Job, job_id)
    if job is None:
        return False
    results = [
        dict(r)
        for r in db.session.scalars(
            sa.select(JobChunk.result).where(JobChunk.job_id == job_id).order_by(JobChunk.index)
        )
    ]
    totals: dict[str, Any] = dict(job.result or {})
    for counts in results:
        for key, value in counts.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    job.result = totals
    chunked = _chunked_kind(job.kind)
    if chunked is not None and chunked.finish is not None:
        chunked.finish(job, results)
    db.session.commit()
    return True


# ---------------------------------------------------------------------------------------------
# The reaper
# ---------------------------------------------------------------------------------------------
@dataclass
class Reaped:
    chunks_requeued: list[int]
    chunks_resent: list[int]
    jobs_resent: list[int]
    chunks_failed: list[int] = field(default_factory=list)
    jobs_completed: list[int] = field(default_factory=list)


def reap(app: Flask | None = None, now: dt.datetime | None = None, *, send: bool = True) -> Reaped:
    """Put running chunks whose worker stopped heart-beating (``JOBS_CHUNK_TIMEOUT`` seconds,
    default 120) back to pending — or, once they have had their ``JOBS_CHUNK_ATTEMPTS``
    tries (a chunk that kills its worker each time), fail them and their job — and send
    again those chunks, pending chunks nobody claimed within the timeout (a lost message)
    and jobs still queued after it (the queue was away). Then complete the running jobs
    whose chunks are all done since the timeout (the worker that finished the last one
    stopped before completing the job, or the job's ``finish`` failed: should it fail again
    here, the job fails with its message). Commits. With ``send=False`` only the database is
    changed."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    now = now or utcnow()
    timeout = dt.timedelta(seconds=float(app.config.get("JOBS_CHUNK_TIMEOUT", 120)))
    attempts = int(app.config.get("JOBS_CHUNK_ATTEMPTS", 3))
    cutoff = now - timeout
    stale_rows = db.session.execute(
        sa.select(JobChunk.id, JobChunk.job_id, JobChunk.attempts).where(
            JobChunk.status == ChunkStatus.RUNNING, JobChunk.heartbeat_at < cutoff
        )
    ).all()
    stale = [chunk_id for chunk_id, _job, tries in stale_rows if tries < attempts]
    spent = [(chunk_id, job_id) for chunk_id, job_id, tries in stale_rows if tries >= attempts]
    if stale:
        db.session.execute(
            sa.update(JobChunk)
            .where(JobChunk.id.in_(stale), JobChunk.status == ChunkStatus.RUNNING,
                   JobChunk.heartbeat_at < cutoff)
            .values(status=ChunkStatus.PENDING, claimed_by=None, heartbeat_at=now,
                    message="requeued: the worker stopped")
        )  # fmt: skip
    failed: list[int] = []
    if spent:
        with force_locale(app.config.get("BABEL_DEFAULT_LOCALE", "zh")):
            message = str(
                _l(
                    "The worker stopped during each of the chunk's %(n)d attempts (killed, "
                    "or out of memory); the job was stopped.",
                    n=attempts,
                )
            )
        for chunk_id, job_id in spent:
            result = db.session.execute(
                sa.update(JobChunk)
                .where(JobChunk.id == chunk_id, JobChunk.status == ChunkStatus.RUNNING,
                       JobChunk.heartbeat_at < cutoff)
                .values(status=ChunkStatus.FAILED, claimed_by=None, message=message,
                        finished_at=now)
            )  # fmt: skip
            if getattr(result, "rowcount", 0) == 1:
                failed.append(chunk_id)
                db.session.execute(
                    sa.update(Job)
                    .where(Job.id == job_id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
                    .values(status=JobStatus.FAILED, message=message, finished_at=now)
                )
    lost = list(
        db.session.scalars(
            sa.select(JobChunk.id)
            .join(Job, Job.id == JobChunk.job_id)
            .where(
                JobChunk.status == ChunkStatus.PENDING,
                JobChunk.heartbeat_at < cutoff,
                Job.status == JobStatus.RUNNING,
            )
        )
    )
    if lost:
        db.session.execute(
            sa.update(JobChunk).where(JobChunk.id.in_(lost)).values(heartbeat_at=now)
        )
    queued = list(
        db.session.scalars(
            sa.select(Job.id).where(Job.status == JobStatus.QUEUED, Job.created_at < cutoff)
        )
    )
    other = sa.orm.aliased(JobChunk)
    unfinished = (
        sa.select(other.id).where(other.job_id == Job.id, other.status != ChunkStatus.DONE).exists()
    )
    all_done = list(
        db.session.scalars(
            sa.select(Job.id)
            .join(JobChunk, JobChunk.job_id == Job.id)
            .where(Job.status == JobStatus.RUNNING, ~unfinished)
            .group_by(Job.id)
            .having(sa.func.max(JobChunk.finished_at) < cutoff)
        )
    )
    db.session.commit()
    completed = []
    for job_id in all_done:
        try:
            if _complete_if_done(job_id):
                completed.append(job_id)
        except Exception as exc:  # the second try (the last chunk's worker made the first)
            log.exception("job %s: completing it failed again; the job fails", job_id)
            db.session.rollback()
            _fail(job_id, f"{type(exc).__name__}: {exc}")
    report = Reaped(stale, lost, queued, failed, completed)
    if send and (stale or lost or queued):
        runner = runner_for(app)
        for job_id in queued:
            runner.submit(app, job_id)
        runner.submit_chunks(app, sorted({*stale, *lost}))
    return report
