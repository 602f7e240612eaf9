"""API clients (data providers and banks) and the short-lived access tokens issued to them.

A client is either a *provider* (``source`` set; its one scope is ``ingest:<source>``) or a
*bank* machine client (``organization_id`` names the bank; ``scopes`` lists what it may ask
for, a subset of :data:`BANK_SCOPES`). A bank client acts through its own non-login service
user (``service_user_id``: an inactive officer of the bank whose actions are audited as the
client's). A client may also register a public JWK (``jwks``) to authenticate with
``private_key_jwt`` (RFC 7523) instead of its secret.

A provider (tax bureau, social-insurance centre, utility, provident-fund centre, public
credit platform) pushes records through the API with OAuth2 client credentials. Each client
may push one ``source``: a scope (``tax`` covers the ``tax`` and ``tax_credit_rating``
tables) or a single table of :mod:`ml.schema`; its only OAuth2 scope is ``ingest:<source>``.

Secrets and tokens are random 256-bit values, stored only as SHA-256 digests: a stolen
database does not yield a usable credential, and (unlike passwords) such values need no slow
hash. The methods named ``get_*`` / ``check_*`` / ``is_*`` are what Authlib's authorization
server and resource protector call.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ml import schema
from models.base import Base, utcnow
from models.organization import Organization
from models.user import User

# What a client may be registered for: a scope, or a table not covered by one.
PROVIDER_SOURCES: tuple[str, ...] = tuple(
    dict.fromkeys([*schema.SCOPE_TABLES, *schema.SOURCE_TABLES])
)
INGEST_SCOPE_PREFIX = "ingest:"
# What a bank's machine client may be allowed to do (the OAuth2 scopes of the bank API).
BANK_SCOPES: tuple[str, ...] = (
    "profiles:read",
    "applications:write",
    "loans:write",
    "needs:write",
    "pool:read",
)
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
JWT_AUTH_METHOD = "private_key_jwt"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def tables_of_source(source: str) -> tuple[str, ...]:
    """The tables a client registered for ``source`` may push."""
    return schema.SCOPE_TABLES.get(source, (source,))


class ProviderClient(Base):
    __tablename__ = "provider_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    source: Mapped[str | None] = mapped_column(sa.String(30))  # providers only
    client_id: Mapped[str] = mapped_column(sa.String(48), unique=True)
    client_secret_hash: Mapped[str] = mapped_column(sa.String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    # Bank clients: the bank, the scopes granted (space-separated) and the service user.
    organization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organization.id"))
    scopes: Mapped[str] = mapped_column(sa.String(300), default="", server_default="")
    service_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    # The public JWK (or JWK set) for private_key_jwt; never a private key.
    jwks: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    organization: Mapped[Organization | None] = relationship()
    service_user: Mapped[User | None] = relationship(foreign_keys=[service_user_id])

    __table_args__ = (
        sa.CheckConstraint(
            f"source IN ({', '.join(repr(s) for s in PROVIDER_SOURCES)})", name="source_known"
        ),
        sa.CheckConstraint(
            "(source IS NULL) <> (organization_id IS NULL)", name="provider_or_bank"
        ),
    )

    @property
    def is_bank(self) -> bool:
        return self.organization_id is not None

    @property
    def scope_list(self) -> list[str]:
        if self.source is not None:
            return [INGEST_SCOPE_PREFIX + self.source]
        return [s for s in self.scopes.split() if s in BANK_SCOPES]

    @property
    def oauth_scope(self) -> str:
        return " ".join(self.scope_list)

    @property
    def tables(self) -> tuple[str, ...]:
        return tables_of_source(self.source) if self.source else ()

    def may_push(self, table: str) -> bool:
        return self.active and table in self.tables

    # Authlib ClientMixin ---------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The scopes asked for (all the client's when none were); the grant refuses a
        request for any scope beyond the client's before this is called."""
        own = self.scope_list
        asked = [s for s in (scope or "").split() if s in own]
        return " ".join(asked or own)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.active and hmac.compare_digest(digest(client_secret), self.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if not self.active or endpoint not in ("token", "revocation", "introspection"):
            return False
        if method == JWT_AUTH_METHOD:
            return self.jwks is not None
        return method in SECRET_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return self.active and grant_type == "client_credentials"

    def __repr__(self) -> str:
        return f"<ProviderClient {self.name!r} {self.source or self.oauth_scope}>"


class ProviderToken(Base):
    __tablename__ = "provider_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_pk: Mapped[int] = mapped_column(sa.ForeignKey("provider_client.id"), index=True)
    access_token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    scope: Mapped[str] = mapped_column(sa.String(100))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]

    client: Mapped[ProviderClient] = relationship()

    # Authlib TokenMixin ----------------------------------------------------------------

    def check_client(self, client: Any) -> bool:
        return bool(getattr(client, "id", None) == self.client_pk)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at - self.issued_at).total_seconds()))

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None or not self.client.active


class UsedAssertion(Base):
    """A ``private_key_jwt`` assertion's ``jti`` seen at the token endpoint, kept until the
    assertion expires so the same assertion is never accepted twice (RFC 7523 §3)."""

    __tablename__ = "oauth_used_assertion"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_pk: Mapped[int] = mapped_column(sa.ForeignKey("provider_client.id"))
    jti: Mapped[str] = mapped_column(sa.String(255))
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)

    __table_args__ = (sa.UniqueConstraint("client_pk", "jti"),)


class IdempotentRequest(Base):
    """One ``Idempotency-Key`` of one client (Stripe's semantics): inserted — and committed —
    before the work, so of concurrent retries only one does it; then the first response
    (status and body) is stored with the work and replayed to every retry. ``fingerprint``
    is the SHA-256 of method, path and body: the same key with another request is a 409."""

    __tablename__ = "api_idempotent_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_pk: Mapped[int] = mapped_column(sa.ForeignKey("provider_client.id"))
    key: Mapped[str] = mapped_column(sa.String(200))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]  # None while the first request is still at work
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    completed_at: Mapped[dt.datetime | None]

    __table_args__ = (sa.UniqueConstraint("client_pk", "key"),)
