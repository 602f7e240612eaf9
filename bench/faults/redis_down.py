"""Fault run: Redis goes away while the web serves and a job is started.

gunicorn (``JOBS_BACKEND=celery``) and a Celery worker on a private Redis, over a seeded demo
on a fresh PostgreSQL schema. Redis is stopped; then, logged in as the office administrator,
pages are loaded (they must answer 200) and a rescoring is started from the models page (the
request must answer at once; the job must wait, queued, saying "queue unavailable").
Redis is started again on the same port; ``flask jobs reap`` (what beat runs every minute)
sends the job; the worker, which reconnects by itself, runs it to the end.

    python bench/faults/redis_down.py [--enterprises 12]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script

from bench.faults.common import bench_schema, flask, processes, report
from bench.run import DEMO_PASSWORD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--enterprises", type=int, default=12)
    args = parser.parse_args()
    import httpx

    with bench_schema() as env, processes(env) as procs:
        env.update(
            JOBS_BACKEND="celery", CELERY_BROKER_URL=procs.broker, JOBS_CHUNK_TIMEOUT="3",
            # the rate limiter on the same Redis, as in production
            REDIS_URL=procs.broker.rsplit("/", 1)[0] + "/1", RATELIMIT_ENABLED="1",
        )  # fmt: skip
        flask(env, "db", "upgrade")
        flask(env, "seed-demo", "--enterprises", str(args.enterprises))
        procs.redis()
        procs.worker("w1")
        base = procs.gunicorn()
        client = httpx.Client(base_url=base, timeout=30)
        token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/auth/login").text)
        assert token
        login = client.post(
            "/auth/login",
            data={"email": "office@demo.test", "password": DEMO_PASSWORD, "csrf_token": token[1]},
        )
        assert login.status_code == 302, login.text[:300]

        procs.stop("redis")  # Redis is down from here
        pages = {}
        for path in ("/healthz", "/office/", "/office/models", "/office/audit", "/notifications"):
            t0 = time.perf_counter()
            response = client.get(path)
            pages[path] = (response.status_code, round((time.perf_counter() - t0) * 1000, 1))
        # a new login while Redis is down (the login form is rate-limited through Redis)
        other = httpx.Client(base_url=base, timeout=30)
        token = re.search(r'name="csrf-token" content="([^"]+)"', other.get("/auth/login").text)
        assert token
        relogin = other.post(
            "/auth/login",
            data={"email": "bank@demo.test", "password": DEMO_PASSWORD, "csrf_token": token[1]},
        ).status_code
        other.close()
        page = client.get("/office/models").text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert csrf
        t0 = time.perf_counter()
        started = client.post(
            "/office/models/rescore",
            data={"csrf_token": csrf[1]},
            headers={"HX-Request": "true", "X-CSRFToken": csrf[1]},
        )
        start_ms = round((time.perf_counter() - t0) * 1000, 1)
        panel = started.text
        job_id = int(re.search(r'id="job-(\d+)"', panel)[1])  # type: ignore[index]
        waiting = client.get(f"/office/models/jobs/{job_id}").text
        queued_status = re.search(r'data-status="(\w+)"', waiting)[1]  # type: ignore[index]
        says_unavailable = "队列暂不可用" in waiting

        procs.redis()  # back, on the same port
        reaps = 0
        final = queued_status
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            time.sleep(4)  # older than JOBS_CHUNK_TIMEOUT: the reaper will send it
            flask(env, "jobs", "reap")
            reaps += 1
            final = re.search(  # type: ignore[index]
                r'data-status="(\w+)"', client.get(f"/office/models/jobs/{job_id}").text
            )[1]
            if final in ("succeeded", "failed"):
                break
        ok = (
            all(code == 200 for code, _ in pages.values())
            and relogin == 302
            and started.status_code == 200
            and queued_status == "queued"
            and says_unavailable
            and final == "succeeded"
        )
        report(
            "redis_down", ok, pages_while_down=pages, login_while_down=relogin,
            start_rescore_status=started.status_code,
            start_rescore_ms=start_ms, job_status_while_down=queued_status,
            says_queue_unavailable=says_unavailable, reaps_after_restart=reaps,
            job_status_at_end=final,
        )  # fmt: skip
        client.close()
        if not ok:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
