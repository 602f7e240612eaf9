"""Data providers' API clients and the short-lived access tokens issued to them.

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

# What a client may be registered for: a scope, or a table not covered by one.
PROVIDER_SOURCES: tuple[str, ...] = tuple(
    dict.fromkeys([*schema.SCOPE_TABLES, *schema.SOURCE_TABLES])
)
INGEST_SCOPE_PREFIX = "ingest:"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def tables_of_source(source: str) -> tuple[str, ...]:
    """The tables a client registered for ``source`` may push."""
    return schema.SCOPE_TABLES.get(source, (source,))


class ProviderClient(Base):
    __tablename__ = "provider_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    source: Mapped[str] = mapped_column(sa.String(30))
    client_id: Mapped[str] = mapped_column(sa.String(48), unique=True)
    client_secret_hash: Mapped[str] = mapped_column(sa.String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))

    __table_args__ = (
        sa.CheckConstraint(
            f"source IN ({', '.join(repr(s) for s in PROVIDER_SOURCES)})", name="source_known"
        ),
    )

    @property
    def oauth_scope(self) -> str:
        return INGEST_SCOPE_PREFIX + self.source

    @property
    def tables(self) -> tuple[str, ...]:
        return tables_of_source(self.source)

    def may_push(self, table: str) -> bool:
        return self.active and table in self.tables

    # Authlib ClientMixin ---------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """Tokens carry the client's one scope, whatever was asked (the grant refuses
        a request for any other scope before this is called)."""
        return self.oauth_scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.active and hmac.compare_digest(digest(client_secret), self.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return self.active and grant_type == "client_credentials"

    def __repr__(self) -> str:
        return f"<ProviderClient {self.name!r} {self.source}>"


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
