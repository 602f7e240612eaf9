"""Provider OAuth2 clients managed by the office: create (secret once), rotate (old secret
refused by the token endpoint, new one works), disable; audited."""

from __future__ import annotations

import base64
import re

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from models import AuditEvent, OrgKind, Role, db
from models.provider import ProviderClient
from tests.conftest import csrf_token


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _token(client: FlaskClient, client_id: str, secret: str) -> int:
    return client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(client_id, secret),
    ).status_code


def _issued(html: str) -> tuple[str, str]:
    cid = re.search(r'data-testid="client-id">([^<]+)<', html).group(1)
    secret = re.search(r'data-testid="client-secret">([^<]+)<', html).group(1)
    return cid, secret


def _create(client: FlaskClient, name: str = "税务局", source: str = "tax") -> tuple[str, str]:
    response = client.post(
        "/office/providers",
        data={
            "name": name,
            "source": source,
            "csrf_token": csrf_token(client, "/office/providers"),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return _issued(response.get_data(as_text=True))


def test_create_shows_the_secret_once_and_it_works(
    client: FlaskClient, app: Flask, login_as
) -> None:
    login_as(OrgKind.OFFICE)
    client_id, secret = _create(client)
    listing = client.get("/office/providers").get_data(as_text=True)
    assert client_id in listing and "ingest:tax" in listing
    assert secret not in listing  # shown only once
    assert _token(app.test_client(), client_id, secret) == 200


def test_rotation_refuses_the_old_secret_and_accepts_the_new(
    client: FlaskClient, app: Flask, login_as
) -> None:
    login_as(OrgKind.OFFICE)
    client_id, old_secret = _create(client)
    api = app.test_client()
    old_token = api.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(client_id, old_secret),
    ).get_json()["access_token"]
    with app.app_context():
        pk = db.session.scalar(
            sa.select(ProviderClient.id).where(ProviderClient.client_id == client_id)
        )
    response = client.post(
        f"/office/providers/{pk}/rotate",
        data={"csrf_token": csrf_token(client, "/office/providers")},
    )
    assert response.status_code == 200
    same_id, new_secret = _issued(response.get_data(as_text=True))
    assert same_id == client_id and new_secret != old_secret
    assert _token(api, client_id, old_secret) == 401
    assert _token(api, client_id, new_secret) == 200
    # tokens issued with the old secret stop working too
    push = api.post(
        "/api/v1/ingest/tax",
        json={"records": []},
        headers={"Authorization": f"Bearer {old_token}", "Idempotency-Key": "k-1"},
    )
    assert push.status_code == 401
    with app.app_context():
        actions = list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)))
        assert actions[-2:] == ["provider.create", "provider.rotate_secret"] or (
            "provider.rotate_secret" in actions
        )
        event = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "provider.rotate_secret")
        )
        assert event.object_id == client_id and new_secret not in str(event.details)


def test_disable_stops_the_client(client: FlaskClient, app: Flask, login_as) -> None:
    login_as(OrgKind.OFFICE)
    client_id, secret = _create(client, "电力公司", "utilities")
    with app.app_context():
        pk = db.session.scalar(
            sa.select(ProviderClient.id).where(ProviderClient.client_id == client_id)
        )
    token = csrf_token(client, "/office/providers")
    response = client.post(f"/office/providers/{pk}/active/0", data={"csrf_token": token})
    assert response.status_code == 302
    assert "disabled; its tokens no longer work" in client.get("/office/providers").get_data(
        as_text=True
    )
    assert _token(app.test_client(), client_id, secret) == 401
    client.post(f"/office/providers/{pk}/active/1", data={"csrf_token": token})
    assert _token(app.test_client(), client_id, secret) == 200


def test_duplicate_name_is_refused_next_to_the_field(client: FlaskClient, login_as) -> None:
    login_as(OrgKind.OFFICE)
    _create(client)
    response = client.post(
        "/office/providers",
        data={
            "name": "税务局",
            "source": "tax",
            "csrf_token": csrf_token(client, "/office/providers"),
        },
    )
    assert response.status_code == 422
    assert "already registered" in response.get_data(as_text=True)


def test_only_office_admins_manage_providers(client: FlaskClient, login_as) -> None:
    login_as(OrgKind.OFFICE, Role.OFFICER)
    assert client.get("/office/providers").status_code == 200
    response = client.post(
        "/office/providers",
        data={"name": "x", "source": "tax", "csrf_token": csrf_token(client, "/office/providers")},
    )
    assert response.status_code == 403


def test_office_registers_a_banks_loan_system_with_scopes(
    app: Flask, client: FlaskClient, login_as, factory
) -> None:
    bank_id = factory.organization(OrgKind.BANK, "闽江银行")
    login_as(OrgKind.OFFICE)
    token = csrf_token(client, "/office/providers")
    form = {"csrf_token": token, "client_name": "信贷系统", "bank": str(bank_id)}
    bad = client.post("/office/providers/banks", data={**form, "scopes": ["profiles:read"],
                                                        "jwk": "{not json"})  # fmt: skip
    assert bad.status_code == 422 and "This is not JSON." in bad.get_data(as_text=True)
    none = client.post("/office/providers/banks", data=form)
    assert none.status_code == 422  # no scope chosen
    created = client.post(
        "/office/providers/banks", data={**form, "scopes": ["profiles:read", "pool:read"]}
    )
    assert created.status_code == 200
    client_id, secret = _issued(created.get_data(as_text=True))
    with app.app_context():
        stored = db.session.scalar(
            sa.select(ProviderClient).where(ProviderClient.client_id == client_id)
        )
        assert stored.organization_id == bank_id
        assert sorted(stored.scope_list) == ["pool:read", "profiles:read"]
    assert _token(client, client_id, secret) == 200
    assert "闽江银行" in client.get("/office/providers").get_data(as_text=True)
