"""Fault run: PostgreSQL restarts in the middle of a bulk ingestion.

A private PostgreSQL cluster (``initdb`` as the ``postgres`` user, in a temporary directory,
on a free port: the machine's shared server is left alone) holds the schema; two Celery
workers ingest a CSV of ``--rows`` tax rows in chunks of ``--chunk`` rows. Once a chunk is
done and another is being written, the server is restarted (``pg_ctl stop -m fast`` then ``start``:
every connection is cut). The chunk being written fails with its transaction (nothing of it is
kept); it is tried again, or the reaper hands it out again; a chunk that had committed finds
its batch by its idempotency key. Checked: the job succeeds, the table holds each row once,
and there is one ingestion batch per chunk.

    python bench/faults/pg_restart_ingest.py [--rows 240000] [--chunk 20000]
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script

from bench.faults.common import bench_schema, flask, free_port, processes, report


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, f"{name} not found (apt-get install postgresql)"
    return found[-1]


def _as_postgres(*argv: str) -> None:
    subprocess.run(  # noqa: S603
        ["runuser", "-u", "postgres", "--", *argv],  # noqa: S607
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=240_000)
    parser.add_argument("--chunk", type=int, default=20_000)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="xyd-pg-"))
    shutil.chown(data, "postgres", "postgres")
    cluster = data / "cluster"
    port = free_port()
    pg_ctl = _pg_bin("pg_ctl")
    _as_postgres(_pg_bin("initdb"), "-D", str(cluster), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    _as_postgres(pg_ctl, "-D", str(cluster), "-o", options, "-w", "-l", str(data / "log"), "start")
    restarted = False
    try:
        os.environ["BENCH_DATABASE_URL"] = (
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        )
        with bench_schema() as env, processes(env) as procs:
            env.update(JOBS_BACKEND="celery", CELERY_BROKER_URL=procs.broker,
                       JOBS_CHUNK_TIMEOUT="8", JOBS_HEARTBEAT_SECONDS="1")  # fmt: skip
            os.environ.update(env)
            flask(env, "db", "upgrade")
            import sqlalchemy as sa

            from app import create_app, jobs
            from app.extensions import db
            from app.services import bulk_jobs
            from bench.ingest import months_back, setup
            from models import ChunkStatus, IngestionBatch, Job, JobChunk, JobStatus
            from models.base import utcnow
            from models.records import TaxRecord

            app = create_app()
            with app.app_context():
                now = utcnow()
                per = 24
                ids = setup(max(1, args.rows // per), now)
                path = procs.tmp / "tax.csv"
                with path.open("w", newline="", encoding="utf-8") as fh:
                    writer = csv.writer(fh)
                    writer.writerow(["uscc", "period", "tax_type", "amount_paid",
                                     "declared_sales", "late_filing", "arrears"])  # fmt: skip
                    for k, uscc in enumerate(ids):
                        for m, period in enumerate(months_back(now.date(), per)):
                            writer.writerow([uscc, period, "VAT", f"{1000 + k % 900}.{m:02d}",
                                             f"{50000 + k % 7000}", "0", "0"])  # fmt: skip
                rows = len(ids) * per
                procs.redis()
                procs.worker("w1")
                procs.worker("w2")
                job_id = bulk_jobs.start_bulk_ingestion(
                    "tax", path, provider="tax-bureau", idempotency_key="fault-run",
                    rows_per_chunk=args.chunk,
                ).id  # fmt: skip
                db.session.commit()
                started = time.monotonic()
                while not restarted and time.monotonic() - started < 300:
                    db.session.rollback()
                    states = [s for (s,) in db.session.execute(
                        sa.select(JobChunk.status).where(JobChunk.job_id == job_id))]  # fmt: skip
                    if ChunkStatus.DONE in states and ChunkStatus.RUNNING in states:
                        db.session.remove()
                        _as_postgres(pg_ctl, "-D", str(cluster), "-m", "fast", "-w", "stop")
                        _as_postgres(pg_ctl, "-D", str(cluster), "-o", options, "-w",
                                     "-l", str(data / "log"), "start")  # fmt: skip
                        restarted = True
                    time.sleep(0.1)
                assert restarted, "no chunk was caught being written"
                status = None
                while time.monotonic() - started < 900:
                    time.sleep(2)
                    try:
                        db.session.rollback()
                        status = db.session.scalar(sa.select(Job.status).where(Job.id == job_id))
                        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                            break
                        jobs.reap(app)
                    except sa.exc.OperationalError:
                        db.session.remove()
                db.session.rollback()
                stored = db.session.scalar(sa.select(sa.func.count()).select_from(TaxRecord))
                distinct = db.session.scalar(
                    sa.select(sa.func.count()).select_from(
                        sa.select(TaxRecord.uscc, TaxRecord.period, TaxRecord.tax_type)
                        .distinct().subquery()
                    )
                )  # fmt: skip
                batches = db.session.scalar(sa.select(sa.func.count()).select_from(IngestionBatch))
                chunks = db.session.scalars(sa.select(JobChunk).where(JobChunk.job_id == job_id))
                attempts = sorted(c.attempts for c in chunks)
                n_chunks = len(attempts)
                ok = (status is JobStatus.SUCCEEDED and stored == rows and distinct == rows
                      and batches == n_chunks)  # fmt: skip
                report(
                    "postgresql_restart_during_ingestion", ok, rows=rows, chunks=n_chunks,
                    job_status=status.value if status else None, records_stored=stored,
                    distinct_records=distinct, batches=batches, chunk_attempts=attempts,
                    seconds=round(time.monotonic() - started, 1),
                )  # fmt: skip
                db.session.remove()
                if not ok:
                    raise SystemExit(1)
    finally:
        subprocess.run(  # noqa: S603
            ["runuser", "-u", "postgres", "--", pg_ctl, "-D", str(cluster), "-m", "immediate",  # noqa: S607
             "stop"], capture_output=True, check=False, timeout=120,
        )  # fmt: skip
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
