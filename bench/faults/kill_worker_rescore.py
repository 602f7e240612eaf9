"""Fault run: kill a Celery worker (SIGKILL) in the middle of a rescoring chunk.

Two workers rescore ``--enterprises`` enterprises in chunks of ``RESCORE_CHUNK``; once a chunk
is done and another is running, the process running it is killed. Its chunk's work was not
committed; the reaper (called every 2 s here, as beat does every minute) puts the chunk
back once its heartbeat is ``JOBS_CHUNK_TIMEOUT`` old, another worker does it. Checked: the
job succeeds and every enterprise has exactly one rescoring snapshot.

    python bench/faults/kill_worker_rescore.py [--enterprises 3000]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script

from bench.faults.common import bench_schema, flask, processes, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--enterprises", type=int, default=3000)
    args = parser.parse_args()
    with bench_schema() as env, processes(env) as procs:
        env.update(
            JOBS_BACKEND="celery", CELERY_BROKER_URL=procs.broker, JOBS_CHUNK_TIMEOUT="6",
            JOBS_HEARTBEAT_SECONDS="1", RESCORE_CHUNK="200",
        )  # fmt: skip
        os.environ.update(env)
        flask(env, "db", "upgrade")
        import sqlalchemy as sa

        from app import create_app, jobs
        from app.extensions import db
        from app.services import model_monitoring, model_registry
        from bench.ingest import setup
        from models import ChunkStatus, CreditProfile, Job, JobChunk, JobStatus, User
        from models.base import utcnow

        app = create_app()
        with app.app_context():
            setup(args.enterprises, utcnow())
            model_registry.seed_demo_model(1500, seed=2026)
            db.session.commit()
            admin = db.session.scalar(sa.select(User).where(User.email == "bench@example.com"))
            procs.redis()
            procs.worker("w1")
            procs.worker("w2")
            job_id = model_monitoring.start_rescore(admin).id
            db.session.commit()
            killed = None
            started = time.monotonic()
            while killed is None and time.monotonic() - started < 300:
                db.session.rollback()
                chunks = db.session.scalars(sa.select(JobChunk).where(JobChunk.job_id == job_id))
                chunks = list(chunks)
                done = [c for c in chunks if c.status is ChunkStatus.DONE]
                running = [c for c in chunks if c.status is ChunkStatus.RUNNING and c.claimed_by]
                if done and running:
                    victim = running[0]
                    pid = int(str(victim.claimed_by).split(":")[1])
                    os.kill(pid, signal.SIGKILL)  # the worker child running the chunk
                    killed = (victim.id, victim.index, pid)
                time.sleep(0.05)
            assert killed is not None, "no chunk was caught running"
            reaped = 0
            while time.monotonic() - started < 600:
                db.session.rollback()
                status = db.session.scalar(sa.select(Job.status).where(Job.id == job_id))
                if status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                    break
                reaped += len(jobs.reap(app).chunks_requeued)
                time.sleep(2)
            db.session.rollback()
            job = db.session.get(Job, job_id)
            assert job is not None
            per_enterprise = dict(
                db.session.execute(
                    sa.select(CreditProfile.enterprise_id, sa.func.count())
                    .where(CreditProfile.trigger == "rescore")
                    .group_by(CreditProfile.enterprise_id)
                ).all()
            )
            victim_chunk = db.session.get(JobChunk, killed[0])
            counts = set(per_enterprise.values())
            ok = (
                job.status is JobStatus.SUCCEEDED
                and len(per_enterprise) == args.enterprises
                and counts == {1}
            )
            report(
                "kill_worker_mid_rescoring", ok,
                enterprises=args.enterprises, job_status=job.status.value,
                chunks=db.session.scalar(sa.select(sa.func.count()).select_from(JobChunk)),
                killed_chunk_index=killed[1], killed_pid=killed[2],
                killed_chunk_attempts=victim_chunk.attempts if victim_chunk else None,
                requeued_by_reaper=reaped, enterprises_rescored=len(per_enterprise),
                snapshots_per_enterprise=sorted(counts),
                seconds=round(time.monotonic() - started, 1),
            )  # fmt: skip
            if not ok:
                raise SystemExit(1)


if __name__ == "__main__":
    main()
