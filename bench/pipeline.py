"""The whole pipeline on Celery (``bench/run.py --full``): synth → ingest → features → score →
match for ``--enterprises`` enterprises, with ``--workers`` Celery worker processes on a
private Redis, through the production paths (``JOBS_BACKEND=celery``, chunked jobs).

1. synth: the enterprises, each with a live tax collection grant (bulk SQL, as
   ``bench/ingest.py``), 12 months of VAT rows each written to a CSV file, three banks'
   published products (the demo's) and an approved scorecard (the demo's, trained on
   ``ml.synth``);
2. ingest: ``bulk_jobs.start_bulk_ingestion`` — one ingestion batch per 50,000 rows;
3. features + score: the ``profiles.recompute`` job the ingestion starts for the enterprises
   whose records changed (``ml.features`` then the scorecard, per chunk of enterprises);
4. match: ``bulk_jobs.start_batch_matching`` — every enterprise × every published product.

Run in the environment ``bench/run.py`` prepares (``DATABASE_URL`` + ``PGOPTIONS`` on a fresh
schema). Prints one JSON line: total seconds and each step's.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_pipeline(env: dict[str, str], n: int, workers: int = 2) -> tuple[float, dict[str, float]]:
    """Run this module as a subprocess in ``env``; returns (total seconds, step seconds)."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(Path(__file__)), "--enterprises", str(n), "--workers", str(workers)],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"pipeline failed:\n{done.stderr[-4000:]}")
    line = json.loads([x for x in done.stdout.splitlines() if x.startswith("{")][-1])
    return float(line["total_s"]), dict(line["steps"])


def _wait(job_id: int, timeout: float) -> Any:
    import sqlalchemy as sa

    from app.extensions import db
    from models import Job, JobStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        job = db.session.scalar(sa.select(Job).where(Job.id == job_id))
        if job is not None and job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            if job.status is JobStatus.FAILED:
                raise RuntimeError(f"job {job_id} ({job.kind}) failed: {job.message}")
            return job
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not finish in {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--enterprises", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()

    redis = shutil.which("redis-server")
    assert redis, "redis-server is needed"
    port = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="xyd-pipeline-"))
    broker = f"redis://127.0.0.1:{port}/0"
    os.environ.update({"JOBS_BACKEND": "celery", "CELERY_BROKER_URL": broker})
    procs = [
        subprocess.Popen(  # noqa: S603
            [redis, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL,
        )
    ]
    try:
        subprocess.run(  # noqa: S603
            [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        import sqlalchemy as sa

        from app import create_app
        from app.extensions import db
        from app.services import bulk_jobs, demo, model_registry
        from bench.ingest import months_back, setup
        from models import Job, Organization, OrgKind
        from models.base import utcnow

        app = create_app()
        steps: dict[str, float] = {}
        with app.app_context():
            t0 = time.perf_counter()
            now = utcnow()
            ids = setup(args.enterprises, now)
            banks = [Organization(kind=OrgKind.BANK, name=f"bench bank {i}") for i in range(3)]
            db.session.add_all(banks)
            db.session.flush()
            demo._seed_products(banks)
            model_registry.seed_demo_model(1500, seed=2026)
            db.session.commit()
            path = tmp / "tax.csv"
            periods = months_back(now.date(), args.months)
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(
                    ["uscc", "period", "tax_type", "amount_paid", "declared_sales",
                     "late_filing", "arrears"]
                )  # fmt: skip
                for k, uscc in enumerate(ids):
                    for m, period in enumerate(periods):
                        writer.writerow(
                            [uscc, period, "VAT", f"{1000 + (k * 7 + m) % 9000}.50",
                             f"{50000 + (k * 13 + m) % 70000}", "0", "0"]
                        )  # fmt: skip
            steps["synth_s"] = time.perf_counter() - t0

            for i in range(args.workers):
                procs.append(
                    subprocess.Popen(  # noqa: S603
                        [
                            str(BIN / "celery"),
                            "-A",
                            "app.celery_app",
                            "worker",
                            "--concurrency=1",
                            f"--hostname=bench{i}@%h",
                            "--loglevel=WARNING",
                        ],
                        cwd=ROOT,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            t1 = time.perf_counter()
            job = bulk_jobs.start_bulk_ingestion(
                "tax", path, provider="tax-bureau", idempotency_key=f"bench-{now:%Y%m%d%H%M%S}"
            )
            db.session.commit()
            _wait(job.id, 3600)
            steps["ingest_s"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            recompute = db.session.scalar(
                sa.select(Job.id).where(Job.kind == "profiles.recompute").order_by(Job.id.desc())
            )
            if recompute is not None:
                _wait(recompute, 3600)
            steps["features_score_s"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            match = bulk_jobs.start_batch_matching()
            db.session.commit()
            matched = _wait(match.id, 3600)
            steps["match_s"] = time.perf_counter() - t3
            total = time.perf_counter() - t0
            result = dict(matched.result or {})
        print(
            json.dumps(
                {
                    "total_s": round(total, 2),
                    "steps": {k: round(v, 2) for k, v in steps.items()},
                    "match": result,
                }
            ),
            flush=True,
        )
    finally:
        for proc in reversed(procs[1:]):  # the workers (each its own process group)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        procs[0].terminate()  # redis
        procs[0].wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
