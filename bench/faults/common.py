"""What the fault runs share: a private Redis, Celery workers and gunicorn on a fresh
PostgreSQL schema (``bench.run.bench_schema``), each process in its own process group so a
run can kill exactly what it started."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

from bench.run import bench_schema, flask, free_port  # noqa: E402

__all__ = ["ROOT", "Processes", "bench_schema", "flask", "free_port", "report"]


def report(name: str, ok: bool, **facts: Any) -> None:
    print(json.dumps({"fault": name, "ok": ok, **facts}, ensure_ascii=False), flush=True)


class Processes:
    """Start and stop the processes of one run (never anything it did not start)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.tmp = Path(tempfile.mkdtemp(prefix="xyd-fault-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.redis_port = free_port()

    @property
    def broker(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self, name: str, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(  # noqa: S603
            argv, cwd=ROOT, env=self.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=kw.pop("stderr", subprocess.DEVNULL), **kw,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def redis(self) -> None:
        server = shutil.which("redis-server")
        assert server, "redis-server is needed"
        self.start("redis", [server, "--port", str(self.redis_port), "--save", "",
                             "--appendonly", "no", "--dir", str(self.tmp)])  # fmt: skip
        self.wait_port(self.redis_port)

    def worker(self, name: str, concurrency: int = 1) -> subprocess.Popen[bytes]:
        return self.start(name, [str(BIN / "celery"), "-A", "app.celery_app", "worker",
                                 f"--concurrency={concurrency}", f"--hostname={name}@%h",
                                 "--loglevel=WARNING"])  # fmt: skip

    def gunicorn(self) -> str:
        port = free_port()
        self.env["GUNICORN_BIND"] = f"127.0.0.1:{port}"
        self.env["GUNICORN_ACCESSLOG"] = "/dev/null"
        self.env["GUNICORN_WORKERS"] = "2"
        self.start("web", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"])
        self.wait_port(port)
        return f"http://127.0.0.1:{port}"

    @staticmethod
    def wait_port(port: int, timeout: float = 30) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
                return
            time.sleep(0.1)
        raise RuntimeError(f"nothing listens on {port}")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=60)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def processes(env: dict[str, str]) -> Iterator[Processes]:
    procs = Processes(env)
    try:
        yield procs
    finally:
        procs.close()
