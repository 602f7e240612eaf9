"""OAuth2 for machine clients: private_key_jwt, scopes, revocation, introspection, and the
negative cases — wrong audience, expired assertion or token, token outside the header, scope
escalation, a replayed assertion, a revoked token."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import RSAKey

from app.api import clients
from app.extensions import db
from models import Organization, OrgKind, ProviderToken
from models.provider import digest
from tests.api.conftest import basic, bearer, make_bank, token_for

TOKEN_URL = "http://localhost/api/v1/oauth/token"


@pytest.fixture
def keyed(app_ctx, factory):
    """A bank client registered with a public JWK: (client_id, private key)."""
    key = RSAKey.generate_key(2048)
    account = factory.user(OrgKind.BANK)
    org = db.session.get(Organization, account.organization_id)
    issued = clients.create_bank_client(
        None,
        org,
        "JWT client",
        ["profiles:read"],
        clients.parse_jwk(__import__("json").dumps(key.as_dict(private=False))),
    )
    db.session.commit()
    return issued.client.client_id, key


def assertion(client_id, key, *, aud=TOKEN_URL, exp_in=120, jti=None):
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + exp_in,
              "jti": jti or uuid.uuid4().hex}  # fmt: skip
    return jwt.encode({"alg": "RS256"}, claims, key)


def jwt_token_request(client, client_id, token):
    return client.post(
        "/api/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token,
        },
    )


def test_private_key_jwt_issues_a_token(client, keyed):
    client_id, key = keyed
    response = jwt_token_request(client, client_id, assertion(client_id, key))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["scope"] == "profiles:read"
    assert client.get("/api/v1/profiles", headers=bearer(body["access_token"])).status_code == 200


def test_wrong_audience_is_refused(client, keyed):
    client_id, key = keyed
    response = jwt_token_request(
        client, client_id, assertion(client_id, key, aud="https://elsewhere.example/token")
    )
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == "invalid_client"


def test_expired_assertion_is_refused(client, keyed):
    client_id, key = keyed
    response = jwt_token_request(client, client_id, assertion(client_id, key, exp_in=-300))
    assert response.get_json()["error"] == "invalid_client"


def test_replayed_assertion_is_refused(client, keyed):
    client_id, key = keyed
    token = assertion(client_id, key)
    assert jwt_token_request(client, client_id, token).status_code == 200
    replay = jwt_token_request(client, client_id, token)
    assert replay.get_json()["error"] == "invalid_client"


def test_assertion_signed_by_another_key_is_refused(client, keyed):
    client_id, _key = keyed
    response = jwt_token_request(client, client_id, assertion(client_id, RSAKey.generate_key(2048)))
    assert response.get_json()["error"] == "invalid_client"


def test_scope_escalation_is_refused(client, app_ctx, factory):
    bank = make_bank(factory, "丙银行", scopes=("profiles:read",))
    response = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "scope": "profiles:read loans:write"},
        headers=basic(*bank.creds),
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"
    # A token for less than the client may do does not reach further either.
    full = make_bank(factory, "丁银行")
    narrow = token_for(client, full.creds, scope="profiles:read")
    refused = client.get("/api/v1/loans", headers=bearer(narrow))
    assert refused.status_code == 403
    assert refused.get_json()["type"].endswith("insufficient-scope")


def test_token_in_query_string_or_form_is_refused(client, app_ctx, factory):
    bank = make_bank(factory, "戊银行")
    token = token_for(client, bank.creds)
    in_query = client.get(f"/api/v1/loans?access_token={token}")
    assert in_query.status_code == 400
    assert in_query.get_json()["errors"][0]["field"] == "access_token"
    in_form = client.post(
        "/api/v1/loans/1/default", data={"access_token": token, "on": "2026-01-01"},
        headers={"Idempotency-Key": "k1"},
    )  # fmt: skip
    assert in_form.status_code == 400
    assert client.get("/api/v1/loans").status_code == 401


def test_expired_token_is_refused(client, app_ctx, factory):
    bank = make_bank(factory, "己银行")
    token = token_for(client, bank.creds)
    row = db.session.scalar(
        sa.select(ProviderToken).where(ProviderToken.access_token_hash == digest(token))
    )
    row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db.session.commit()
    response = client.get("/api/v1/loans", headers=bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_revoked_token_is_refused_and_introspects_inactive(client, app_ctx, factory):
    bank = make_bank(factory, "庚银行")
    token = token_for(client, bank.creds)
    live = client.post(
        "/api/v1/oauth/introspect", data={"token": token}, headers=basic(*bank.creds)
    )
    assert live.get_json()["active"] is True
    assert live.get_json()["client_id"] == bank.creds[0]
    revoked = client.post("/api/v1/oauth/revoke", data={"token": token}, headers=basic(*bank.creds))
    assert revoked.status_code == 200
    assert client.get("/api/v1/loans", headers=bearer(token)).status_code == 401
    dead = client.post(
        "/api/v1/oauth/introspect", data={"token": token}, headers=basic(*bank.creds)
    )
    assert dead.get_json() == {"active": False}


def test_another_clients_token_cannot_be_introspected_or_revoked(client, app_ctx, factory):
    a, b = make_bank(factory, "辛银行"), make_bank(factory, "壬银行")
    token = token_for(client, a.creds)
    peek = client.post("/api/v1/oauth/introspect", data={"token": token}, headers=basic(*b.creds))
    assert peek.get_json() == {"active": False}
    client.post("/api/v1/oauth/revoke", data={"token": token}, headers=basic(*b.creds))
    assert client.get("/api/v1/loans", headers=bearer(token)).status_code == 200


def test_a_private_key_is_not_accepted_as_the_clients_jwk(app_ctx):
    key = RSAKey.generate_key(2048)
    with pytest.raises(clients.AccountError) as err:
        clients.parse_jwk(__import__("json").dumps(key.as_dict(private=True)))
    assert err.value.field == "jwk"
