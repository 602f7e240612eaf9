"""``flask`` commands. They parse options, call services and commit once."""

from __future__ import annotations

import os

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.extensions import db
from app.services import accounts, applications, audit, demo, policies
from models import Organization, OrgKind, Role, User


def register(app: Flask) -> None:
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(accounts_group)
    app.cli.add_command(audit_group)
    app.cli.add_command(applications_group)


@click.command("seed-demo")
@with_appcontext
@click.option("--enterprises", default=300, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--activity/--no-activity",
    default=True,
    show_default=True,
    help="Also products, authorizations, collected records, a model and profiles.",
)
def seed_demo_command(enterprises: int, activity: bool) -> None:
    """Create or complete the demo data. Safe to run again.

    The demo logins' password is $XINYIDAI_DEMO_PASSWORD when set, otherwise a new one is
    generated, set on the three demo logins and printed.
    """
    password = os.environ.get("XINYIDAI_DEMO_PASSWORD") or accounts.generate_password()
    problem = accounts.password_problem(password)
    if problem is not None:
        raise click.UsageError(f"XINYIDAI_DEMO_PASSWORD: {problem}")
    # The collection jobs the grants start run right after the commit, in this process.
    current_app.config["JOBS_EAGER"] = True
    summary = demo.seed_demo(enterprises, password, activity=activity)
    db.session.commit()
    records = graded = n_applications = n_needs = 0
    if activity:
        records, graded = demo.seed_model_and_profiles()
        db.session.commit()
        n_applications = demo.seed_applications()
        db.session.commit()
        n_needs = demo.seed_needs()
        db.session.commit()
        policies.seed_demo_policies()
        db.session.commit()
    click.echo(
        f"Demo ready: {summary.total_enterprises} enterprises "
        f"({summary.created_enterprises} new), 3 banks, the office."
    )
    if activity:
        click.echo(
            f"  {summary.products} new products, {summary.grants} new authorizations, "
            f"{records} records collected, {graded} enterprises graded, "
            f"{n_applications} new applications, {n_needs} new financing needs."
        )
    for kind, email in demo.DEMO_LOGINS.items():
        click.echo(f"  {kind:<10} {email}")
    source = "XINYIDAI_DEMO_PASSWORD" if os.environ.get("XINYIDAI_DEMO_PASSWORD") else "generated"
    click.echo(f"  password   {summary.password}   ({source})")


@click.group("accounts", cls=AppGroup)
def accounts_group() -> None:
    """Create banks, the office and their users."""


@accounts_group.command("create-org")
@click.option("--kind", type=click.Choice(["bank", "office"]), required=True)
@click.argument("name")
def create_org(kind: str, name: str) -> None:
    try:
        org = accounts.create_organization(None, OrgKind(kind), name)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc.message)) from exc
    db.session.commit()
    click.echo(f"Created {kind} #{org.id}: {org.name}")


@accounts_group.command("create-user")
@click.option("--org", "org_name", required=True, help="Name of the bank or office.")
@click.option("--email", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default="admin")
def create_user(org_name: str, email: str, display_name: str, role: str) -> None:
    """Add a user to a bank or the office; prints a one-time password."""
    org = db.session.scalar(
        sa.select(Organization).where(
            Organization.name == org_name, Organization.kind != OrgKind.ENTERPRISE
        )
    )
    if org is None:
        raise click.ClickException(f"No bank or office named {org_name!r}.")
    try:
        user, password = accounts.create_user(None, org, email, display_name, Role(role))
    except accounts.AccountError as exc:
        raise click.ClickException(f"{exc.field or 'error'}: {exc.message}") from exc
    db.session.commit()
    click.echo(f"Created {user.email} ({role}) in {org.name}. One-time password: {password}")


@accounts_group.command("disable-user")
@click.argument("email")
def disable_user(email: str) -> None:
    """Disable a user and end all their sessions."""
    user = db.session.scalar(sa.select(User).where(User.email == accounts.normalize_email(email)))
    if user is None:
        raise click.ClickException(f"No user {email!r}.")
    accounts.set_user_active(None, user, False)
    db.session.commit()
    click.echo(f"Disabled {user.email}; their sessions have ended.")


@click.group("audit", cls=AppGroup)
def audit_group() -> None:
    """The hash-chained audit trail."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Check the whole chain; exit 1 naming the first broken event."""
    report = audit.verify()
    if report.ok:
        click.echo(f"Audit chain intact: {report.checked} events verified.")
        return
    click.echo(
        f"Audit chain BROKEN at event seq={report.first_broken_seq} (id={report.first_broken_id}): "
        f"{report.problem}. {report.checked} events before it are intact.",
        err=True,
    )
    raise SystemExit(1)


@click.group("applications", cls=AppGroup)
def applications_group() -> None:
    """Loan applications and their working-day deadlines."""


@applications_group.command("check-deadlines")
def check_deadlines() -> None:
    """Tell the office, bank and enterprise about each application past its deadline (once)
    and send on those whose enterprise agreed. Run it periodically (every few minutes)."""
    result = applications.check_deadlines()
    db.session.commit()
    click.echo(
        f"{result['overdue_told']} newly overdue application(s) notified, "
        f"{result['routed']} sent on to the next matching bank."
    )
