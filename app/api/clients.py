"""Registering data providers' API clients (the CLI and the office call these)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from joserfc import jwk
from joserfc.errors import JoseError
from sqlalchemy.orm import joinedload

from app.services import audit
from app.services.accounts import AccountError
from models import Organization, OrgKind, Role, User, db
from models.base import utcnow
from models.provider import (
    BANK_SCOPES,
    PROVIDER_SOURCES,
    ProviderClient,
    ProviderToken,
    digest,
)


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
    """Every client, by name, with the bank of each bank client (one statement, however
    many banks have clients)."""
    return list(
        db.session.scalars(
            sa.select(ProviderClient)
            .options(joinedload(ProviderClient.organization))
            .order_by(ProviderClient.name)
        )
    )


def by_client_id(client_id: str) -> ProviderClient | None:
    return db.session.scalar(sa.select(ProviderClient).where(ProviderClient.client_id == client_id))


# Banks' machine clients --------------------------------------------------------------

SERVICE_EMAIL_DOMAIN = "api-clients.xinyidai.invalid"
# Not an argon2 hash: no password ever verifies against it.
NO_LOGIN = "!api-client: no login"


def parse_jwk(text: str) -> dict[str, Any] | None:
    """A public JWK or JWK set as JSON, checked; ``None`` for an empty text. Raises
    :class:`AccountError` (field ``jwk``) for anything else, including a private key."""
    text = text.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        raise AccountError(_l("The JWK is not valid JSON."), "jwk") from None
    keys = data.get("keys") if isinstance(data, dict) else None
    candidates = keys if isinstance(keys, list) else [data]
    if not candidates or not all(isinstance(k, dict) for k in candidates):
        raise AccountError(_l("Give one public JWK or a JWK set."), "jwk")
    for key in candidates:
        if any(member in key for member in ("d", "p", "q", "k")):
            raise AccountError(
                _l("This is a private or symmetric key: register the public key only."), "jwk"
            )
        try:
            jwk.import_key(key)
        except (JoseError, ValueError, TypeError):
            raise AccountError(
                _l("The JWK is not a usable RSA, EC or OKP public key."), "jwk"
            ) from None
    return data


def create_bank_client(
    actor: User | None,
    bank: Organization,
    name: str,
    scopes: list[str],
    jwks: dict[str, Any] | None = None,
) -> IssuedCredentials:
    """Register a machine client acting for ``bank`` with ``scopes`` (⊆ BANK_SCOPES), with
    its own non-login service user (an inactive officer of the bank, the actor of whatever
    the client does). Raises :class:`AccountError`."""
    name = name.strip()
    if bank.kind is not OrgKind.BANK or not bank.is_active:
        raise AccountError(_l("Choose an active bank."), "bank")
    if not name or len(name) > 100:
        raise AccountError(_l("Give the client a name of at most 100 characters."), "name")
    unknown = [s for s in scopes if s not in BANK_SCOPES]
    if not scopes or unknown:
        raise AccountError(_l("Choose at least one of the bank API scopes."), "scopes")
    if db.session.scalar(sa.select(ProviderClient.id).where(ProviderClient.name == name)):
        raise AccountError(_l("An API client with this name is already registered."), "name")
    client_id = "xyd-" + secrets.token_hex(16)
    service_user = User(
        organization=bank,
        email=f"{client_id}@{SERVICE_EMAIL_DOMAIN}",
        display_name=f"API: {name}"[:100],
        password_hash=NO_LOGIN,
        role=Role.OFFICER,
        is_active=False,
    )
    db.session.add(service_user)
    db.session.flush()
    secret = secrets.token_urlsafe(32)
    client = ProviderClient(
        name=name,
        source=None,
        organization_id=bank.id,
        scopes=" ".join(s for s in BANK_SCOPES if s in scopes),
        service_user_id=service_user.id,
        jwks=jwks,
        client_id=client_id,
        client_secret_hash=digest(secret),
        created_by_user_id=actor.id if actor else None,
    )
    db.session.add(client)
    db.session.flush()
    audit.record(
        "api_client.create",
        actor=actor,
        object_type="provider_client",
        object_id=client.client_id,
        details={
            "name": name,
            "bank_org_id": bank.id,
            "scopes": client.scopes,
            "private_key_jwt": jwks is not None,
        },
    )
    return IssuedCredentials(client, secret)
