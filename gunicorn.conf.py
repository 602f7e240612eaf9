"""gunicorn settings for the web process: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Every value can be overridden from the environment (``GUNICORN_<NAME>``, or gunicorn's own
``GUNICORN_CMD_ARGS``). Sync workers: each request is a short database round trip, and
long work goes to the Celery workers, so 2 x cores + 1 processes keep the CPU busy.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any


def _env(name: str, default: str) -> str:
    return os.environ.get(f"GUNICORN_{name}", default)


bind = _env("BIND", "127.0.0.1:8000")  # behind nginx; set XINYIDAI_PROXY_COUNT=1 then
workers = int(_env("WORKERS", str(multiprocessing.cpu_count() * 2 + 1)))
threads = int(_env("THREADS", "1"))
worker_class = _env("WORKER_CLASS", "sync")
timeout = int(_env("TIMEOUT", "30"))  # a request longer than this is a bug: jobs are async
graceful_timeout = int(_env("GRACEFUL_TIMEOUT", "30"))
keepalive = int(_env("KEEPALIVE", "5"))
max_requests = int(_env("MAX_REQUESTS", "2000"))  # recycle workers now and then
max_requests_jitter = int(_env("MAX_REQUESTS_JITTER", "200"))
# The master imports the app once and forks the workers from it: a worker (re)started every
# max_requests is a fork, not a fresh import of the app and its libraries (some 3 s of CPU
# each, the scoring libraries included), and the workers share those pages of memory.
# post_fork below gives every worker its own database connections. A deploy restarts the
# master (HUP keeps the code it loaded); GUNICORN_PRELOAD_APP=0 imports in each worker.
preload_app = _env("PRELOAD_APP", "1") == "1"
accesslog = _env("ACCESSLOG", "-")
errorlog = _env("ERRORLOG", "-")
loglevel = _env("LOGLEVEL", "info")
# Do not log the query string: it may carry tokens (password reset, provider push).
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_fork(server: Any, worker: Any) -> None:
    """The worker just forked from the master: drop the connection pools it inherited (the
    master's connections, if the app opened any, stay the master's: ``close=False``), so the
    worker connects on its own. SQLAlchemy's pools are not fork-safe; Redis's are."""
    if not server.cfg.preload_app:
        return  # the worker imports the app itself, after the fork
    from app.extensions import db

    application = server.app.wsgi()
    with application.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)
