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

import os
import threading
from typing import Any

import kombu.pools
from celery import Celery
from celery.schedules import crontab
from flask import Flask
from kombu.connection import ConnectionPool

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"

celery = Celery("xinyidai")
celery.conf.update(
    broker_url=os.environ.get("CELERY_BROKER_URL", DEFAULT_BROKER),
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # A task still running after an hour is hung (a chunk takes seconds to minutes): its
    # process is killed, its chunk's heartbeat stops, and the reaper hands the chunk out
    # again — up to JOBS_CHUNK_ATTEMPTS times, then fails it and its job.
    task_time_limit=int(os.environ.get("CELERY_TASK_TIME_LIMIT", "3600")),
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


#: Publishing a message that fails on a connection error (a kept connection the broker dropped:
#: Redis restarted since) is repeated once by kombu on a new connection, without waiting.
RETRY_ONCE = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


def broker_pool(url: str) -> ConnectionPool:
    """kombu's pool of connections to the broker at ``url``, one per process and URL: a
    connection given back after a send stays open for the next one (opening one to Redis
    took ~6 ms of the ~25 ms an ingestion batch spent committing and sending its job). At
    most ``broker_pool_limit`` (10) are in use at once; one more send waits for one, up to
    ``broker_connection_timeout``, then raises (the job stays queued, as for a broker down)."""
    return kombu.pools.connections[celery.connection_for_write(url)]


def reset_connections() -> None:
    """Forget the broker connections kept by this process (kombu's pools, celery's among them).

    Run in every process just forked (gunicorn's workers from the preloaded app): the
    connections inherited from the parent are its sockets, not ours to use. kombu and celery
    do this themselves only after billiard's or multiprocessing's forks
    (``register_after_fork``), not after a plain ``os.fork``; these are the same calls."""
    kombu.pools.reset()
    celery._after_fork()  # celery's own pool was one of kombu's: made anew when next used


os.register_at_fork(after_in_child=reset_connections)


def _send(app: Flask, task: Any, ids: list[int]) -> None:
    """Publish one message per id on a connection to the app's broker, kept open for the
    next send. A new connection gets one attempt: a broker that cannot be reached raises at
    once (no retry loop in a web request). A message that fails on a kept connection is sent
    once more on a new one (:data:`RETRY_ONCE`); a message sent twice that way runs once
    (jobs and chunks are claimed). A connection that failed is closed, not kept."""
    url = app.config.get("CELERY_BROKER_URL") or celery.conf.broker_url
    timeout = celery.conf.broker_connection_timeout
    with broker_pool(url).acquire(block=True, timeout=timeout) as conn:
        conn.ensure_connection(max_retries=0)  # at once when already open
        for one in ids:
            task.apply_async((one,), connection=conn, retry=True, retry_policy=RETRY_ONCE)


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
        "chunks_failed": len(found.chunks_failed),
        "jobs_completed": len(found.jobs_completed),
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
