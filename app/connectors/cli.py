"""``flask collection ...`` and ``flask jobs ...``: the background work, from cron or an
operator's shell."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup

from app import jobs
from app.services import collection
from models import db

collection_group = AppGroup("collection", help="Collecting enterprises' records from providers.")


@collection_group.command("run-due")
def run_due() -> None:
    """Start the monthly collections that are due (run it daily from cron)."""
    jobs = collection.start_due_collections()
    db.session.commit()
    click.echo(f"Started {len(jobs)} collection job(s).")
    for job in jobs:
        click.echo(f"  job {job.id}: authorization {job.authorization_id}")


jobs_group = AppGroup("jobs", help="Background jobs.")


@jobs_group.command("fail-stale")
@click.option(
    "--minutes",
    default=60,
    show_default=True,
    type=click.IntRange(1),
    help="Jobs queued or running longer than this are marked failed.",
)
def fail_stale(minutes: int) -> None:
    """Mark jobs whose process stopped as failed (run it from cron)."""
    count = jobs.fail_stale(dt.timedelta(minutes=minutes))
    db.session.commit()
    click.echo(f"Marked {count} interrupted job(s) failed.")


@jobs_group.command("reap")
def reap() -> None:
    """Requeue chunks whose worker stopped, resend lost jobs, fail chunks that stopped their
    worker on every attempt and complete jobs whose chunks are all done (Celery beat runs it
    every minute; run it by hand after an outage)."""
    found = jobs.reap()
    click.echo(
        f"Requeued {len(found.chunks_requeued)} chunk(s), resent {len(found.chunks_resent)} "
        f"chunk(s) and {len(found.jobs_resent)} job(s); failed {len(found.chunks_failed)} "
        f"chunk(s); completed {len(found.jobs_completed)} job(s)."
    )
