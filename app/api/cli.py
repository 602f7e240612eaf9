"""``flask providers ...``: register data providers' API clients."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.api import clients
from app.services.accounts import AccountError
from models import db
from models.provider import PROVIDER_SOURCES

providers_group = AppGroup("providers", help="Data providers' API clients (OAuth2).")


@providers_group.command("create")
@click.option("--name", required=True, help="The provider, e.g. 税务局.")
@click.option(
    "--source",
    required=True,
    type=click.Choice(PROVIDER_SOURCES),
    help="The scope or table this client may push.",
)
def create(name: str, source: str) -> None:
    """Register a provider; prints its client id and secret (the secret only this once)."""
    try:
        issued = clients.create_client(None, name, source)
    except AccountError as exc:
        raise click.ClickException(str(exc.message)) from exc
    db.session.commit()
    client = issued.client
    click.echo(
        f"Created provider {client.name!r} for {client.source} (scope {client.oauth_scope})."
    )
    click.echo(f"  client_id      {client.client_id}")
    click.echo(f"  client_secret  {issued.client_secret}")
    click.echo("Store the secret now: it is not kept and cannot be shown again.")


@providers_group.command("list")
def list_() -> None:
    """Every registered provider client."""
    for client in clients.clients():
        state = "active" if client.active else "disabled"
        click.echo(f"{client.client_id}  {client.source:<18} {state:<9} {client.name}")


@providers_group.command("disable")
@click.argument("client_id")
def disable(client_id: str) -> None:
    """Disable a client and revoke its tokens at once."""
    client = clients.by_client_id(client_id)
    if client is None:
        raise click.ClickException(f"No provider client {client_id!r}.")
    clients.set_active(None, client, False)
    db.session.commit()
    click.echo(f"Disabled {client.name!r}; its tokens no longer work.")


@providers_group.command("enable")
@click.argument("client_id")
def enable(client_id: str) -> None:
    """Enable a disabled client again."""
    client = clients.by_client_id(client_id)
    if client is None:
        raise click.ClickException(f"No provider client {client_id!r}.")
    clients.set_active(None, client, True)
    db.session.commit()
    click.echo(f"Enabled {client.name!r}.")
