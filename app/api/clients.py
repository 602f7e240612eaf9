"""Registering data providers' API clients (the CLI and the office call these)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from app.services import audit
from app.services.accounts import AccountError
from models import User, db
from models.base import utcnow
from models.provider import PROVIDER_SOURCES, ProviderClient, ProviderToken, digest


@dataclass(frozen=True)
class IssuedCredentials:
    client: ProviderClient
    client_secret: str  # shown once; only its digest is stored


def create_client(actor: User | None, name: str, source: str) -> IssuedCredentials:
    """Register a provider allowed to push ``source``. Raises :class:`AccountError`."""
    name = name.strip()
    if not name or len(name) > 100:
        raise AccountError(_l("Give the provider a name of at most 100 characters."), "name")
    if source not in PROVIDER_SOURCES:
        raise AccountError(
            _l(
                "Unknown source %(s)s; choose one of %(all)s.",
                s=source,
                all=", ".join(PROVIDER_SOURCES),
            ),
            "source",
        )
    if db.session.scalar(sa.select(ProviderClient.id).where(ProviderClient.name == name)):
        raise AccountError(_l("A provider with this name is already registered."), "name")
    secret = secrets.token_urlsafe(32)
    client = ProviderClient(
        name=name,
        source=source,
        client_id="xyd-" + secrets.token_hex(16),
        client_secret_hash=digest(secret),
        created_by_user_id=actor.id if actor else None,
    )
    db.session.add(client)
    db.session.flush()
    audit.record(
        "provider.create",
        actor=actor,
        scope=source,
        object_type="provider_client",
        object_id=client.client_id,
        details={"name": name},
    )
    return IssuedCredentials(client, secret)


def set_active(actor: User | None, client: ProviderClient, active: bool) -> None:
    """Enable or disable a client; disabling also revokes its tokens at once."""
    client.active = active
    if not active:
        db.session.execute(
            sa.update(ProviderToken)
            .where(ProviderToken.client_pk == client.id, ProviderToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    db.session.flush()
    audit.record(
        "provider.enable" if active else "provider.disable",
        actor=actor,
        scope=client.source,
        object_type="provider_client",
        object_id=client.client_id,
    )


def rotate_secret(actor: User | None, client: ProviderClient) -> IssuedCredentials:
    """Issue a new secret for ``client`` (returned once); the old secret stops working at once
    and every token issued with it is revoked. Audited, without the secret."""
    secret = secrets.token_urlsafe(32)
    client.client_secret_hash = digest(secret)
    db.session.execute(
        sa.update(ProviderToken)
        .where(ProviderToken.client_pk == client.id, ProviderToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    db.session.flush()
    audit.record(
        "provider.rotate_secret",
        actor=actor,
        scope=client.source,
        object_type="provider_client",
        object_id=client.client_id,
    )
    return IssuedCredentials(client, secret)


def clients() -> list[ProviderClient]:
    return list(db.session.scalars(sa.select(ProviderClient).order_by(ProviderClient.name)))


def by_client_id(client_id: str) -> ProviderClient | None:
    return db.session.scalar(sa.select(ProviderClient).where(ProviderClient.client_id == client_id))
