"""``flask collection ...``: collecting records outside a request (cron, operators)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

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
