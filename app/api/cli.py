"""``flask providers ...`` and ``flask bank-clients ...``: register the API's machine clients."""

from __future__ import annotations

import json
from pathlib import Path

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from app.api import clients
from app.services.accounts import AccountError
from models import Organization, OrgKind, db
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


bank_clients_group = AppGroup("bank-clients", help="Banks' API clients (OAuth2).")


@bank_clients_group.command("create")
@click.option("--bank", "bank_name", required=True, help="The bank's organization name.")
@click.option("--name", required=True, help="The client, e.g. 信贷系统.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(sorted(clients.BANK_SCOPES)),
    help="A scope the client may ask for (repeat the option for several).",
)
@click.option(
    "--jwk",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A public JWK (JSON) for private_key_jwt; without it the client uses its secret.",
)
def create_bank_client(
    bank_name: str, name: str, scopes: tuple[str, ...], jwk: Path | None
) -> None:
    """Register a bank's machine client; prints its id and secret (the secret only once)."""
    bank = db.session.scalar(
        sa.select(Organization).where(
            Organization.name == bank_name, Organization.kind == OrgKind.BANK
        )
    )
    if bank is None:
        raise click.ClickException(f"No bank named {bank_name!r}.")
    try:
        key = json.loads(jwk.read_text("utf-8")) if jwk is not None else None
        issued = clients.create_bank_client(None, bank, name, list(scopes), key)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{jwk}: not JSON ({exc.msg}, line {exc.lineno})") from exc
    except AccountError as exc:
        raise click.ClickException(str(exc.message)) from exc
    db.session.commit()
    client = issued.client
    click.echo(f"Created client {client.name!r} for {bank.name} (scopes {' '.join(scopes)}).")
    click.echo(f"  client_id      {client.client_id}")
    click.echo(f"  client_secret  {issued.client_secret}")
    click.echo("Store the secret now: it is not kept and cannot be shown again.")
