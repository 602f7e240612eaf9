"""OAuth2 for machine clients (providers and banks): Authlib's authorization server
(client-credentials grant only; client authentication with a secret — ``client_secret_basic``
or ``client_secret_post`` — or ``private_key_jwt``, RFC 7523), token revocation (RFC 7009)
and introspection (RFC 7662), and a resource protector that accepts bearer tokens in the
``Authorization`` header only.

Tokens live ``OAUTH2_TOKEN_LIFETIME`` seconds (default 900: 15 minutes) and carry the scopes
asked for (all the client's when none were); asking for a scope beyond the client's is
refused at the token endpoint (``invalid_scope``). Only SHA-256 digests of tokens are stored.
A ``private_key_jwt`` assertion must name the token endpoint's URL as ``aud``, expire within
``ASSERTION_MAX_LIFETIME`` and carry a ``jti`` that is never accepted twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidScopeError
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, url_for
from flask_babel import lazy_gettext as _l
from joserfc import jwk
from sqlalchemy.exc import IntegrityError

from app.api.errors import ApiProblem
from models import db
from models.base import utcnow
from models.provider import (
    JWT_AUTH_METHOD,
    SECRET_AUTH_METHODS,
    ProviderClient,
    ProviderToken,
    UsedAssertion,
    digest,
)

DEFAULT_TOKEN_LIFETIME = 900
ASSERTION_MAX_LIFETIME = dt.timedelta(minutes=10)
CLIENT_AUTH_METHODS = [*SECRET_AUTH_METHODS, JWT_AUTH_METHOD]


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
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        own = self.request.client.scope_list
        requested = (self.request.payload.scope or "").split()
        if any(scope not in own for scope in requested):
            raise InvalidScopeError(f"this client may only request {' '.join(own)!r}")


class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt``: a JWT signed with the key whose public JWK the client
    registered; ``aud`` must be the token endpoint's URL, ``exp`` near, ``jti`` fresh."""

    CLIENT_AUTH_METHOD = JWT_AUTH_METHOD

    def __init__(self) -> None:
        super().__init__(validate_jti=True, leeway=30)

    def get_audiences(self) -> list[str]:
        return [url_for("api.issue_token", _external=True)]

    def resolve_client_public_key(self, client: ProviderClient) -> Any:
        if not client.jwks:
            raise InvalidClientError(description="This client has no registered public key.")
        if "keys" in client.jwks:
            return jwk.KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        return jwk.import_key(client.jwks)

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        """Record the ``jti`` until the assertion expires; ``False`` if it was seen before
        (also when a concurrent request records it first: the unique constraint)."""
        client = db.session.scalar(
            sa.select(ProviderClient).where(ProviderClient.client_id == claims["sub"])
        )
        now = utcnow()
        expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        if client is None or not isinstance(jti, str) or not 0 < len(jti) <= 255:
            return False
        if expires - now > ASSERTION_MAX_LIFETIME:
            raise InvalidClientError(description="The assertion must expire within 10 minutes.")
        db.session.execute(sa.delete(UsedAssertion).where(UsedAssertion.expires_at < now))
        try:
            with db.session.begin_nested():
                db.session.add(UsedAssertion(client_pk=client.id, jti=jti, expires_at=expires))
        except IntegrityError:
            return False
        return True


def _token_by_string(token_string: str) -> ProviderToken | None:
    return db.session.scalar(
        sa.select(ProviderToken).where(ProviderToken.access_token_hash == digest(token_string))
    )


class Revocation(RevocationEndpoint):
    """RFC 7009: a client revokes one of its own access tokens (always 200)."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return _token_by_string(token_string)

    def revoke_token(self, token: ProviderToken, request: Any) -> None:
        if token.revoked_at is None:
            token.revoked_at = utcnow()
        db.session.flush()


class Introspection(IntrospectionEndpoint):
    """RFC 7662: a client asks whether one of its own tokens is active."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return _token_by_string(token_string)

    def check_permission(self, token: ProviderToken, client: Any, request: Any) -> bool:
        return bool(token.client_pk == client.id)

    def introspect_token(self, token: ProviderToken) -> dict[str, Any]:
        return {
            "active": True,
            "client_id": token.client.client_id,
            "scope": token.scope,
            "token_type": "Bearer",
            "iat": int(token.issued_at.timestamp()),
            "exp": int(token.expires_at.timestamp()),
        }


class _Validator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> ProviderToken | None:
        return _token_by_string(token_string)


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
        server.register_client_auth_method(JWT_AUTH_METHOD, PrivateKeyJWT())
        server.register_endpoint(Revocation)
        server.register_endpoint(Introspection)


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
