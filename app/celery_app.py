"""Celery on Redis: the production runner of :mod:`app.jobs`, and the periodic tasks.

Processes (see ``Procfile``)::

    celery -A app.celery_app worker --loglevel=INFO     # runs jobs and their chunks
    celery -A app.celery_app beat --loglevel=INFO       # the schedule below

Callers never use Celery directly: they call ``jobs.enqueue`` and, with
``JOBS_BACKEND=celery``, the job id goes to :func:`run_job`, which plans the job's chunks and
sends one :func:`run_chunk` task per chunk, so every worker shares the work. Tasks are
``acks_late`` (a message is acknowledged only when its task has ended) and idempotent (a job
no longer queued, a chunk no longer pending is left alone); the reaper (:func:`reap`, every
minute) requeues the chunks of a worker that stopped heart-beating, without relying on the
broker's redelivery.

Beat schedule: ``applications.check_deadlines`` every 5 minutes, the due monthly collection
fetches (each live monthly grant is fetched when its last collection is 30 days old; checked
daily at 02:00 Beijing time), and the reaper every minute.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from celery import Celery
from celery.schedules import crontab
from flask import Flask
from kombu import Connection

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"

celery = Celery("xinyidai")
celery.conf.update(
    broker_url=os.environ.get("CELERY_BROKER_URL", DEFAULT_BROKER),
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    timezone="Asia/Shanghai",
    enable_utc=True,
    broker_connection_retry_on_startup=True,
    # A web request must not hang on a broker that is down: fail fast, the job stays queued.
    broker_connection_timeout=2,
    broker_transport_options={"socket_connect_timeout": 2, "socket_timeout": 5},
    beat_schedule={
        "check-deadlines": {"task": "xinyidai.check_deadlines", "schedule": 300.0},
        "monthly-collections": {
            "task": "xinyidai.start_due_collections",
            "schedule": crontab(hour=2, minute=0),
        },
        "reap": {"task": "xinyidai.reap", "schedule": 60.0},
    },
)

_flask_app: Flask | None = None
_lock = threading.Lock()


def bind(app: Flask) -> None:
    """Use ``app`` for the tasks run in this process (tests; the worker creates its own)."""
    global _flask_app
    _flask_app = app
    configure(app)


def configure(app: Flask) -> None:
    url = app.config.get("CELERY_BROKER_URL")
    if url and celery.conf.broker_url != url:
        celery.conf.broker_url = url


def flask_app() -> Flask:
    global _flask_app
    with _lock:
        if _flask_app is None:
            from app import create_app

            _flask_app = create_app()
        return _flask_app


class _Connections:
    """Broker connections kept open from one send to the next, per process and broker URL.

    Opening a connection to Redis took about 6 ms of the ~25 ms an ingestion batch spent
    committing and sending its profile-recompute job; a connection is now taken from here
    and given back after the send. Each thread takes a connection of its own (at most
    :data:`IDLE` are kept per URL; more are closed after use). A process forked from
    another (gunicorn's workers from the preloaded app) starts with none: a socket is
    never shared across processes."""

    IDLE = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[str, list[Connection]] = {}
        self._pid = os.getpid()
        self.opened = 0  # connections opened by this process (tests read it)

    def _idle_of(self, url: str) -> list[Connection]:
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use
            self._idle, self._pid, self.opened = {}, os.getpid(), 0
        return self._idle.setdefault(url, [])

    def take(self, url: str) -> tuple[Connection, bool]:
        """A connection to ``url`` and whether it was used before (raises at once, after
        one attempt, when a new one cannot be opened)."""
        with self._lock:
            idle = self._idle_of(url)
            if idle:
                return idle.pop(), True
        return self.open(url), False

    def open(self, url: str) -> Connection:
        conn = celery.connection_for_write(url)
        try:
            conn.ensure_connection(max_retries=1)
        except BaseException:
            self.discard(conn)
            raise
        with self._lock:
            self.opened += 1
        return conn

    def give_back(self, url: str, conn: Connection) -> None:
        with self._lock:
            idle = self._idle_of(url)
            if len(idle) < self.IDLE:
                idle.append(conn)
                return
        self.discard(conn)

    @staticmethod
    def discard(conn: Connection) -> None:
        with contextlib.suppress(Exception):
            conn.release()

    def close_all(self) -> None:
        with self._lock:
            idle = [c for conns in self._idle.values() for c in conns]
            self._idle = {}
        for conn in idle:
            self.discard(conn)


connections = _Connections()


def _publish(conn: Connection, task: Any, ids: list[int]) -> None:
    for one in ids:
        task.apply_async((one,), connection=conn, retry=False)


def _send(app: Flask, task: Any, ids: list[int]) -> None:
    """Publish one message per id on a connection to the app's broker, kept open for the
    next send (raises at once when the broker cannot be reached: no retry loop in a web
    request). A kept connection that fails (the broker restarted since, say) is closed
    and the messages go once more on a new one; a message sent twice that way runs once
    (jobs and chunks are claimed)."""
    url = app.config.get("CELERY_BROKER_URL") or celery.conf.broker_url
    conn, reused = connections.take(url)
    try:
        _publish(conn, task, ids)
    except Exception:
        connections.discard(conn)
        if not reused:
            raise
        conn = connections.open(url)
        try:
            _publish(conn, task, ids)
        except BaseException:
            connections.discard(conn)
            raise
    except BaseException:
        connections.discard(conn)
        raise
    connections.give_back(url, conn)


def send_job(app: Flask, job_id: int) -> None:
    _send(app, run_job, [job_id])


def send_chunks(app: Flask, chunk_ids: list[int]) -> None:
    _send(app, run_chunk, chunk_ids)


@celery.task(name="xinyidai.run_job", acks_late=True)
def run_job(job_id: int) -> None:
    from app import jobs

    jobs.run(flask_app(), job_id)


@celery.task(name="xinyidai.run_chunk", acks_late=True)
def run_chunk(chunk_id: int) -> bool:
    from app import jobs

    return jobs.run_chunk(flask_app(), chunk_id)


@celery.task(name="xinyidai.reap")
def reap() -> dict[str, Any]:
    from app import jobs

    app = flask_app()
    with app.app_context():
        found = jobs.reap(app)
    return {
        "chunks_requeued": len(found.chunks_requeued),
        "chunks_resent": len(found.chunks_resent),
        "jobs_resent": len(found.jobs_resent),
    }


@celery.task(name="xinyidai.check_deadlines")
def check_deadlines() -> dict[str, int]:
    from app.extensions import db
    from app.services import applications

    with flask_app().app_context():
        result = applications.check_deadlines()
        db.session.commit()
        return result


@celery.task(name="xinyidai.start_due_collections")
def start_due_collections() -> int:
    from app.extensions import db
    from app.services import collection

    with flask_app().app_context():
        started = collection.start_due_collections()
        db.session.commit()
        return len(started)
