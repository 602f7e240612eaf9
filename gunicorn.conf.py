"""gunicorn settings for the web process: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Every value can be overridden from the environment (``GUNICORN_<NAME>``, or gunicorn's own
``GUNICORN_CMD_ARGS``). Sync workers: each request is a short database round trip, and
long work goes to the Celery workers, so 2 x cores + 1 processes keep the CPU busy.
"""

from __future__ import annotations

import multiprocessing
import os


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
# The app is created after the fork: every worker opens its own database connections.
preload_app = False
accesslog = _env("ACCESSLOG", "-")
errorlog = _env("ERRORLOG", "-")
loglevel = _env("LOGLEVEL", "info")
# Do not log the query string: it may carry tokens (password reset, provider push).
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1")
