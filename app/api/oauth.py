"""OAuth2 for providers: Authlib's authorization server (client-credentials grant only) and
a resource protector that accepts bearer tokens in the ``Authorization`` header only.

Tokens live ``OAUTH2_TOKEN_LIFETIME`` seconds (default 900: 15 minutes) and carry the
client's one scope ``ingest:<source>``; asking for any other scope is refused at the token
endpoint (``invalid_scope``). Only SHA-256 digests of tokens are stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import Flask
from flask_babel import lazy_gettext as _l

from app.api.errors import ApiProblem
from models import db
from models.base import utcnow
from models.provider import ProviderClient, ProviderToken, digest

DEFAULT_TOKEN_LIFETIME = 900


def _query_client(client_id: str) -> ProviderClient | None:
    return db.session.scalar(sa.select(ProviderClient).where(ProviderClient.client_id == client_id))


def _save_token(token: dict[str, Any], request: Any) -> None:
    now = utcnow()
    # Tokens expired for a day are of no use even to an investigation: drop them.
    db.session.execute(
        sa.delete(ProviderToken).where(
            ProviderToken.client_pk == request.client.id,
            ProviderToken.expires_at < now - dt.timedelta(days=1),
        )
    )
    db.session.add(
        ProviderToken(
            client_pk=request.client.id,
            access_token_hash=digest(token["access_token"]),
            scope=token.get("scope") or request.client.oauth_scope,
            issued_at=now,
            expires_at=now + dt.timedelta(seconds=int(token["expires_in"])),
        )
    )
    db.session.flush()  # the token view commits


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def validate_token_request(self) -> None:
        super().validate_token_request()
        requested = (self.request.payload.scope or "").split()
        if any(scope != self.request.client.oauth_scope for scope in requested):
            raise InvalidScopeError(
                f"this client may only request {self.request.client.oauth_scope!r}"
            )


class _Validator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> ProviderToken | None:
        return db.session.scalar(
            sa.select(ProviderToken).where(ProviderToken.access_token_hash == digest(token_string))
        )


server = AuthorizationServer()
protector = ResourceProtector()
protector.register_token_validator(_Validator())


def init_app(app: Flask) -> None:
    lifetime = int(app.config.get("OAUTH2_TOKEN_LIFETIME", DEFAULT_TOKEN_LIFETIME))
    app.config.setdefault("OAUTH2_TOKEN_EXPIRES_IN", {"client_credentials": lifetime})
    server.init_app(app, query_client=_query_client, save_token=_save_token)
    # One server object serves every app of the process (tests build several): register the
    # grant once.
    if not any(grant is ClientCredentialsGrant for grant, _ in server._token_grants):
        server.register_grant(ClientCredentialsGrant)


def current_token() -> ProviderToken:
    """The request's valid bearer token, or :class:`ApiProblem` 401."""
    try:
        token = protector.acquire_token()
    except OAuth2Error as error:
        raise ApiProblem(
            401,
            "invalid-token",
            _l("Not authenticated"),
            _l(
                "Send a valid, unexpired access token from /api/v1/oauth/token in the "
                "Authorization header: Bearer <token>."
            ),
            headers={"WWW-Authenticate": f'Bearer realm="xinyidai", error="{error.error}"'},
        ) from error
    if not isinstance(token, ProviderToken):
        raise ApiProblem(401, "invalid-token", _l("Not authenticated"), _l("Unknown token."))
    return token
