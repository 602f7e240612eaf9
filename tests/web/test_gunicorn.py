"""The web process as production starts it: ``gunicorn -c gunicorn.conf.py wsgi:app``, the
app imported once by the master and the workers forked from it (``preload_app``), each with
database connections of its own (the ``post_fork`` hook)."""

from __future__ import annotations

import os
import re
import runpy
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.services.crypto import new_key_spec
from tests.jobs.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_workers_forked_from_the_preloaded_app_serve_the_database_through_recycling(
    app: Flask, tmp_path: Path
) -> None:
    """Two workers recycled every 3 requests: every answer reaches the database with the
    schema up to date, whichever worker (first or re-forked) gives it."""
    port = free_port()
    log = tmp_path / "gunicorn.log"
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    assert isinstance(url, str)
    env = {
        **os.environ,
        "XINYIDAI_ENV": "production",
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": url,  # the test database (a string: tests/conftest.py)
        "XINYIDAI_INSTANCE_PATH": str(tmp_path),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_MAX_REQUESTS": "3",
        "GUNICORN_MAX_REQUESTS_JITTER": "0",
        "GUNICORN_ACCESSLOG": "/dev/null",
        "GUNICORN_ERRORLOG": "-",
        "FIELD_KEYS": app.config.get("FIELD_KEYS") or new_key_spec(None),
    }
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("connect_args", {}).get("options")
    if options:  # the PostgreSQL pass: the run's own schema
        env["PGOPTIONS"] = options
    with log.open("w") as errors:  # gunicorn's log and anything the app prints at start
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"gunicorn exited:\n{log.read_text()}"
            try:
                if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"gunicorn did not answer:\n{log.read_text()}"
            time.sleep(0.2)
        answers = [httpx.get(base + "/healthz", timeout=30) for _ in range(18)]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    text = log.read_text()
    assert [a.status_code for a in answers] == [200] * 18, text
    assert all(a.json()["database"]["schema_revision"]["up_to_date"] for a in answers)
    booted = re.findall(r"Booting worker with pid: (\d+)", text)
    assert len(set(booted)) >= 5, text  # the 2 first workers and at least 3 re-forked ones
    assert "Autorestarting worker after current request" in text


def test_post_fork_gives_the_worker_connection_pools_of_its_own(app: Flask) -> None:
    """A pool inherited from the master holds the master's sockets: the hook replaces it, and
    the worker's first query opens its own connection."""
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert settings["preload_app"] is True  # the default GUNICORN_PRELOAD_APP=1
    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        db.session.remove()  # the master's connection, back in the pool
        inherited = db.engine.pool
        assert inherited.checkedin() >= 1
    server = SimpleNamespace(
        cfg=SimpleNamespace(preload_app=True), app=SimpleNamespace(wsgi=lambda: app)
    )
    settings["post_fork"](server, None)
    with app.app_context():
        assert db.engine.pool is not inherited
        assert db.engine.pool.checkedin() == 0
        assert db.session.execute(sa.text("SELECT 1")).scalar() == 1
        assert db.engine.pool.checkedin() + db.engine.pool.checkedout() == 1
        db.session.remove()
    inherited.dispose()  # here "master" and "worker" are one process: close the master's too
