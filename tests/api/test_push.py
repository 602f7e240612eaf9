"""The provider push API: OAuth2 client credentials, scope per provider, idempotent batches,
problem JSON."""

from __future__ import annotations

import base64
import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from app.api import clients
from app.extensions import db
from app.services import authorization as authz
from app.services import workdays
from app.services.authorization import GrantRequest
from models import AuditEvent, AuthorizationKind, Enterprise, User
from models.ingestion import IngestionBatch
from models.provider import ProviderToken, digest
from models.records import RECORD_MODELS

PROBLEM = "application/problem+json"


def last_month() -> str:
    first = workdays.local_date().replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def month_before(month: str, n: int) -> str:
    index = int(month[:4]) * 12 + int(month[5:]) - 1 - n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@pytest.fixture
def provider(app_ctx):
    """A tax-bureau client: (client_id, secret)."""
    issued = clients.create_client(None, "税务局", "tax")
    db.session.commit()
    return issued.client.client_id, issued.client_secret


@pytest.fixture
def enterprise(app_ctx, factory) -> Enterprise:
    account = factory.enterprise()
    user = db.session.get(User, account.user_id)
    found = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == account.organization_id)
    )
    assert found is not None
    authz.grant(user, found, GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=("tax",)))
    db.session.commit()
    return found


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def get_token(client, credentials, **data) -> str:
    response = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", **data},
        headers=basic(*credentials),
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def tax_rows(uscc: str, n: int = 3) -> list[dict]:
    month = last_month()
    return [
        {
            "uscc": uscc,
            "period": month_before(month, i),
            "tax_type": "VAT",
            "amount_paid": "1200.50",
            "declared_sales": 80000,
            "late_filing": 0,
            "arrears": "0",
        }
        for i in range(n)
    ]


def push(client, token, source, records, key="batch-1", **headers):
    all_headers = {"Authorization": f"Bearer {token}", **headers}
    if key is not None:
        all_headers["Idempotency-Key"] = key
    return client.post(f"/api/v1/ingest/{source}", json={"records": records}, headers=all_headers)


def stored(table: str) -> int:
    model = RECORD_MODELS[table]
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["type"] == f"urn:xinyidai:problem:{slug}"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


# Tokens ------------------------------------------------------------------------------


def test_token_endpoint_issues_a_short_lived_token_with_the_clients_scope(client, provider):
    response = client.post(
        "/api/v1/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(*provider)
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "ingest:tax"
    assert response.headers["Cache-Control"] == "no-store"
    token = db.session.scalar(sa.select(ProviderToken))
    assert token is not None
    assert token.access_token_hash == digest(body["access_token"])
    assert body["access_token"] not in {token.access_token_hash, token.scope}
    assert dt.timedelta(minutes=14) < token.expires_at - token.issued_at <= dt.timedelta(minutes=15)


def test_secret_in_the_body_works_too(client, provider):
    client_id, secret = provider
    response = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("data", "credentials", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, "wrong-secret", 401, "invalid_client"),
        ({"grant_type": "password"}, None, 400, "unsupported_grant_type"),
        (
            {"grant_type": "client_credentials", "scope": "ingest:utilities"},
            None,
            400,
            "invalid_scope",
        ),
    ],
)
def test_token_endpoint_refusals(client, provider, data, credentials, status, error):
    client_id, secret = provider
    response = client.post(
        "/api/v1/oauth/token", data=data, headers=basic(client_id, credentials or secret)
    )
    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ProviderToken)) == 0


def test_client_secret_in_the_url_is_refused(client, provider):
    client_id, secret = provider
    response = client.post(
        f"/api/v1/oauth/token?client_id={client_id}&client_secret={secret}",
        data={"grant_type": "client_credentials"},
    )
    body = assert_problem(response, 400, "credentials-in-url")
    assert body["errors"] == [{"field": "client_secret", "message": "not accepted in the URL"}]


# Pushing -----------------------------------------------------------------------------


def test_happy_path_stores_the_records_and_says_what_happened(client, provider, enterprise):
    token = get_token(client, provider)
    rows = tax_rows(enterprise.uscc)
    response = push(client, token, "tax", rows)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["source"] == "tax" and body["status"] == "completed"
    assert body["counts"] == {
        "received": 3,
        "accepted": 3,
        "duplicates": 0,
        "corrected": 0,
        "rejected": 0,
    }
    assert body["rejected"] == []
    assert "Idempotent-Replayed" not in response.headers
    assert stored("tax") == 3
    batch = db.session.get(IngestionBatch, body["batch_id"])
    assert batch is not None
    assert batch.provider == "税务局" and batch.submitted_by_client == provider[0]
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "ingestion.batch"))
    assert event is not None and event.details["client_id"] == provider[0]


def test_a_scope_client_may_push_every_table_of_its_scope(client, provider, enterprise):
    token = get_token(client, provider)
    year = str(int(last_month()[:4]) - 1)
    response = push(
        client, token, "tax_credit_rating", [{"uscc": enterprise.uscc, "year": year, "rating": "A"}]
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["counts"]["accepted"] == 1


def test_pushing_another_source_is_scope_creep(client, provider, enterprise):
    token = get_token(client, provider)
    response = push(client, token, "utilities", [{"uscc": enterprise.uscc}])
    body = assert_problem(response, 403, "scope-creep")
    assert body["title"] == "Scope creep"
    assert "tax" in body["detail"] and "utilities" in body["detail"]
    assert stored("utilities") == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IngestionBatch)) == 0
    refused = db.session.scalar(
        sa.select(AuditEvent).where(AuditEvent.action == "provider.scope_refused")
    )
    assert refused is not None and refused.scope == "utilities"
    assert refused.details == {"registered_source": "tax"}


def test_an_unknown_source_is_404(client, provider):
    token = get_token(client, provider)
    assert_problem(push(client, token, "bank_statements", []), 404, "unknown-source")


@pytest.mark.parametrize("token", ["not-a-token", ""])
def test_invalid_or_missing_tokens_are_401(client, enterprise, token):
    response = push(client, token, "tax", tax_rows(enterprise.uscc))
    assert_problem(response, 401, "invalid-token")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="xinyidai"')
    assert stored("tax") == 0


def test_an_expired_token_is_401(client, provider, enterprise):
    token = get_token(client, provider)
    db.session.execute(
        sa.update(ProviderToken).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
    )
    db.session.commit()
    response = push(client, token, "tax", tax_rows(enterprise.uscc))
    assert_problem(response, 401, "invalid-token")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert stored("tax") == 0


def test_a_token_in_the_query_string_is_refused(client, provider, enterprise):
    token = get_token(client, provider)
    response = client.post(
        f"/api/v1/ingest/tax?access_token={token}",
        json={"records": tax_rows(enterprise.uscc)},
        headers={"Idempotency-Key": "k1"},
    )
    body = assert_problem(response, 400, "credentials-in-url")
    assert body["errors"][0]["field"] == "access_token"
    assert stored("tax") == 0


def test_a_disabled_clients_tokens_stop_working_at_once(client, provider, enterprise):
    token = get_token(client, provider)
    found = clients.by_client_id(provider[0])
    assert found is not None
    clients.set_active(None, found, False)
    db.session.commit()
    assert_problem(push(client, token, "tax", tax_rows(enterprise.uscc)), 401, "invalid-token")
    response = client.post(
        "/api/v1/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(*provider)
    )
    assert response.status_code == 401


def test_missing_idempotency_key_is_400(client, provider, enterprise):
    token = get_token(client, provider)
    response = push(client, token, "tax", tax_rows(enterprise.uscc), key=None)
    body = assert_problem(response, 400, "idempotency-key-missing")
    assert body["errors"] == [{"field": "Idempotency-Key", "message": "required"}]
    assert stored("tax") == 0


def test_a_malformed_idempotency_key_is_400(client, provider, enterprise):
    token = get_token(client, provider)
    response = push(client, token, "tax", tax_rows(enterprise.uscc), key="has spaces")
    assert_problem(response, 400, "idempotency-key-invalid")


def test_a_replay_gets_the_same_answer_and_writes_nothing(client, provider, enterprise):
    token = get_token(client, provider)
    rows = tax_rows(enterprise.uscc)
    first = push(client, token, "tax", rows, key="2026-11-batch-7")
    again = push(client, token, "tax", rows, key="2026-11-batch-7")
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stored("tax") == 3
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IngestionBatch)) == 1


def test_the_same_key_with_another_body_is_409(client, provider, enterprise):
    token = get_token(client, provider)
    rows = tax_rows(enterprise.uscc)
    assert push(client, token, "tax", rows, key="k-1").status_code == 201
    changed = [dict(rows[0], amount_paid="9999.00"), *rows[1:]]
    body = assert_problem(
        push(client, token, "tax", changed, key="k-1"), 409, "idempotency-key-reused"
    )
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert stored("tax") == 3
    # a new key is a new batch: the changed row becomes a correction
    response = push(client, token, "tax", changed, key="k-2")
    assert response.get_json()["counts"]["corrected"] == 1
    assert response.get_json()["counts"]["duplicates"] == 2


def test_rows_without_a_collection_grant_are_rejected_with_that_reason(client, provider, factory):
    account = factory.enterprise()
    ungranted = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == account.organization_id)
    )
    assert ungranted is not None
    token = get_token(client, provider)
    response = push(client, token, "tax", tax_rows(ungranted.uscc, 2))
    assert response.status_code == 201
    body = response.get_json()
    assert body["counts"]["accepted"] == 0 and body["counts"]["rejected"] == 2
    assert [(r["line"], r["field"], r["code"]) for r in body["rejected"]] == [
        (1, None, "no_grant"),
        (2, None, "no_grant"),
    ]
    assert "No live collection grant for tax" in body["rejected"][0]["message"]
    assert stored("tax") == 0


def test_bad_rows_are_rejected_with_line_field_and_message(client, provider, enterprise):
    token = get_token(client, provider)
    rows = tax_rows(enterprise.uscc)
    rows[1]["amount_paid"] = "-5"
    response = push(client, token, "tax", rows)
    body = response.get_json()
    assert response.status_code == 201
    assert body["counts"]["accepted"] == 2 and body["counts"]["rejected"] == 1
    (rejected,) = body["rejected"]
    assert rejected["line"] == 2 and rejected["field"] == "amount_paid"
    assert "negative" in rejected["message"]


def test_a_body_without_records_is_400(client, provider):
    token = get_token(client, provider)
    response = client.post(
        "/api/v1/ingest/tax",
        data="records=1",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k"},
    )
    body = assert_problem(response, 400, "invalid-body")
    assert body["errors"][0]["field"] == "records"


def test_nested_values_are_422_naming_line_and_field(client, provider, enterprise):
    token = get_token(client, provider)
    rows = tax_rows(enterprise.uscc)
    rows[2]["arrears"] = {"amount": 1}
    body = assert_problem(push(client, token, "tax", rows), 422, "invalid-records")
    assert body["errors"] == [{"line": 3, "field": "arrears", "message": "not a single value"}]
    assert stored("tax") == 0


def test_missing_columns_are_422(client, provider, enterprise):
    token = get_token(client, provider)
    rows = [{"uscc": enterprise.uscc, "period": last_month()}]
    body = assert_problem(push(client, token, "tax", rows), 422, "missing-columns")
    assert {e["field"] for e in body["errors"]} >= {"tax_type", "amount_paid"}


def test_too_many_records_is_413(client, provider, enterprise, app, monkeypatch):
    monkeypatch.setitem(app.config, "API_MAX_RECORDS", 2)
    token = get_token(client, provider)
    assert_problem(push(client, token, "tax", tax_rows(enterprise.uscc)), 413, "too-many-records")


def test_problems_are_in_chinese_by_default(app):
    # No app_ctx fixture here: it forces English on every request made inside it.
    with app.app_context():
        issued = clients.create_client(None, "自来水公司", "utilities")
        db.session.commit()
        credentials = (issued.client.client_id, issued.client_secret)
    browser = app.test_client()
    token = get_token(browser, credentials)
    response = push(browser, token, "tax", [])
    body = response.get_json()
    assert body["title"] == "越权推送"
    assert body["detail"] == "该客户端仅登记可推送 utilities；不得推送 tax。"


def test_concurrent_pushes_with_one_key_ingest_once(app, provider, enterprise):
    """Providers retry on timeouts, so the same batch may arrive twice at once: one stores
    it, the others get its answer."""
    token = get_token(app.test_client(), provider)
    rows = tax_rows(enterprise.uscc)
    barrier = threading.Barrier(4)
    responses: list = []
    lock = threading.Lock()

    def send() -> None:
        browser = app.test_client()
        barrier.wait()
        response = push(browser, token, "tax", rows, key="retry-storm")
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [r.status_code for r in responses] == [201] * 4
    assert len({r.get_json()["batch_id"] for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    db.session.rollback()
    assert stored("tax") == 3
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IngestionBatch)) == 1


def test_tokens_expired_for_a_day_are_dropped_when_a_new_one_is_issued(client, provider):
    get_token(client, provider)
    db.session.execute(
        sa.update(ProviderToken).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    )
    db.session.commit()
    fresh = get_token(client, provider)
    hashes = db.session.scalars(sa.select(ProviderToken.access_token_hash)).all()
    assert hashes == [digest(fresh)]
