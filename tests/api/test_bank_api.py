"""The bank API: authorized profiles, applications and decisions, loans, needs and pool —
and the authorization matrix: every operation is allowed exactly where a live grant exists."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import applications, workdays
from app.services import authorization as authz
from models import (
    ApplicationStatus,
    AuditEvent,
    Authorization,
    IdempotentRequest,
    LoanApplication,
    User,
)
from tests.api.conftest import PROBLEM, World, bearer, post, token_for

KINDS = ("authorized", "never", "revoked", "expired", "other_only")
TOMORROW = (workdays.local_date() + dt.timedelta(days=10)).isoformat()
OFFER = {
    "decision": "offer",
    "amount": "250000.00",
    "rate": "4.2",
    "term_months": 12,
    "fee": "500.00",
    "valid_until": TOMORROW,
}


def calls(w: World, kind: str) -> list[tuple[str, str, dict | None]]:
    """Every API operation about one enterprise of kind ``kind`` (method, path, body)."""
    e = w.enterprises[kind].id
    a = w.apps[kind]
    return [
        ("GET", f"/api/v1/profiles/{e}", None),
        ("GET", f"/api/v1/applications/{a}", None),
        ("GET", f"/api/v1/pool/eligibility?enterprise_id={e}&product_id={w.bank.product_id}"
                "&amount=300000.00", None),
        ("POST", f"/api/v1/applications/{a}/review", {}),
        ("POST", f"/api/v1/applications/{a}/decision", OFFER),
    ]  # fmt: skip


def request(client, token, method, path, body):
    if method == "GET":
        return client.get(path, headers=bearer(token))
    return post(client, path, token, body)


@pytest.mark.parametrize("kind", KINDS)
def test_authorization_matrix(client, world, kind):
    token = token_for(client, world.bank.creds)
    allowed = kind == "authorized"
    statuses = []
    for method, path, body in calls(world, kind):
        response = request(client, token, method, path, body)
        statuses.append(response.status_code)
        if not allowed:
            assert response.status_code == 404, (path, response.get_json())
            assert response.mimetype == PROBLEM
    if allowed:
        assert statuses == [200, 200, 200, 200, 200], statuses
    # Lists show exactly the authorized enterprise.
    ids = {
        i["enterprise"]["id"]
        for i in client.get("/api/v1/profiles", headers=bearer(token)).get_json()["items"]
    }
    assert (world.enterprises[kind].id in ids) is allowed
    app_ids = {
        i["id"]
        for i in client.get("/api/v1/applications", headers=bearer(token)).get_json()["items"]
    }
    assert (world.apps[kind] in app_ids) is allowed


def test_unauthorized_and_nonexistent_give_the_same_404(client, world):
    token = token_for(client, world.bank.creds)
    never = client.get(f"/api/v1/profiles/{world.enterprises['never'].id}", headers=bearer(token))
    missing = client.get("/api/v1/profiles/999999", headers=bearer(token))
    assert never.status_code == missing.status_code == 404
    assert never.get_data() == missing.get_data()


def test_revocation_bites_on_the_very_next_request_with_an_earlier_token(client, world):
    token = token_for(client, world.bank.creds)
    path = f"/api/v1/profiles/{world.enterprises['authorized'].id}"
    assert client.get(path, headers=bearer(token)).status_code == 200
    app = db.session.get(LoanApplication, world.apps["authorized"])
    grant = db.session.get(Authorization, app.sharing_authorization_id)
    authz.revoke(world.smes["authorized"], grant)
    db.session.commit()
    assert client.get(path, headers=bearer(token)).status_code == 404
    response = client.get(f"/api/v1/applications/{app.id}", headers=bearer(token))
    assert response.status_code == 404


def test_profile_read_is_counted_and_audited_as_the_client(client, world):
    token = token_for(client, world.bank.creds)
    enterprise = world.enterprises["authorized"]
    response = client.get(f"/api/v1/profiles/{enterprise.id}", headers=bearer(token))
    body = response.get_json()
    assert body["enterprise"]["uscc"] == enterprise.uscc
    assert body["records"] == {} or isinstance(body["records"], dict)
    db.session.expire_all()
    app = db.session.get(LoanApplication, world.apps["authorized"])
    grant = db.session.get(Authorization, app.sharing_authorization_id)
    assert grant.use_count == 1
    event = db.session.scalar(
        sa.select(AuditEvent)
        .where(AuditEvent.action == "profile.view")
        .order_by(AuditEvent.seq.desc())
    )
    assert event.enterprise_id == enterprise.id
    actor = db.session.get(User, event.actor_user_id)
    assert actor.email.startswith(world.bank.creds[0])
    assert actor.is_active is False


def test_offer_with_idempotency_key_replays_and_refuses_another_body(client, world):
    token = token_for(client, world.bank.creds)
    path = f"/api/v1/applications/{world.apps['authorized']}/decision"
    key = uuid.uuid4().hex
    first = post(client, path, token, OFFER, key)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["status"] == "offered"
    assert first.get_json()["offer"] == {
        "amount": "250000.00", "rate": "4.2", "term_months": 12, "fee": "500.00",
        "valid_until": TOMORROW,
    }  # fmt: skip
    again = post(client, path, token, OFFER, key)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    other = post(client, path, token, {**OFFER, "rate": "5.0"}, key)
    assert other.status_code == 409
    assert other.get_json()["type"].endswith("idempotency-key-reused")
    events = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "application.offered")
    ).all()
    assert len(events) == 1


def test_a_key_abandoned_in_progress_is_taken_over_by_the_same_request(client, world, monkeypatch):
    """A process died after taking the key, before its work committed. Five minutes on the
    same request runs; a different request under that key stays refused."""
    import hashlib

    from models.provider import IdempotentRequest

    monkeypatch.setitem(client.application.config, "IDEMPOTENCY_WAIT_SECONDS", 0.3)
    token = token_for(client, world.bank.creds)
    path = f"/api/v1/applications/{world.apps['authorized']}/decision"

    def print_of(body):
        raw = client.application.json.dumps(body).encode()  # as the test client sends it
        return hashlib.sha256(b"POST " + path.encode() + b"\n" + raw).hexdigest()

    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    fresh = dt.datetime.now(dt.UTC)
    for key, fingerprint, at in [
        ("abandoned", print_of(OFFER), stale),
        ("other-body", print_of({**OFFER, "rate": "5.0"}), stale),
        ("still-running", print_of(OFFER), fresh),
    ]:
        db.session.add(
            IdempotentRequest(
                client_pk=world.bank.client_pk, key=key, fingerprint=fingerprint, created_at=at
            )
        )
    db.session.commit()
    assert post(client, path, token, OFFER, "other-body").status_code == 409
    assert post(client, path, token, OFFER, "still-running").status_code == 409  # in progress
    taken = post(client, path, token, OFFER, "abandoned")
    assert taken.status_code == 200, taken.get_json()
    assert taken.get_json()["status"] == "offered"
    assert "Idempotent-Replayed" not in taken.headers


def test_post_without_idempotency_key_is_refused(client, world):
    token = token_for(client, world.bank.creds)
    response = client.post(
        f"/api/v1/applications/{world.apps['authorized']}/review", json={}, headers=bearer(token)
    )
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "Idempotency-Key"


def test_invalid_offer_names_the_fields(client, world):
    token = token_for(client, world.bank.creds)
    path = f"/api/v1/applications/{world.apps['authorized']}/decision"
    response = post(client, path, token, {**OFFER, "amount": 250000.5, "rate": "abc"})
    assert response.status_code == 422
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert {"offer.amount", "offer.rate"} <= fields
    outside = post(client, path, token, {**OFFER, "rate": "9.0"})
    assert outside.status_code == 422
    assert outside.get_json()["errors"] == [
        {"field": "rate", "message": "The rate is outside the product's range.", "line": None}
    ]


def test_coded_rejection_and_then_an_illegal_change(client, world):
    token = token_for(client, world.bank.creds)
    path = f"/api/v1/applications/{world.apps['authorized']}/decision"
    rejected = post(client, path, token, {"decision": "reject", "codes": ["low_grade", "policy"]})
    assert rejected.status_code == 200
    assert rejected.get_json()["rejection"] == {"codes": ["low_grade", "policy"], "text": None}
    again = post(client, path, token, OFFER)
    assert again.status_code == 409
    assert again.get_json()["type"].endswith("illegal-transition")


def test_disbursement_repayment_and_default(client, world):
    token = token_for(client, world.bank.creds)
    app_id = world.apps["authorized"]
    assert post(client, f"/api/v1/applications/{app_id}/decision", token, OFFER).status_code == 200
    app = db.session.get(LoanApplication, app_id)
    applications.accept(world.smes["authorized"], app)
    db.session.commit()
    today = workdays.local_date().isoformat()
    loan = post(
        client, f"/api/v1/applications/{app_id}/disbursement", token, {"disbursed_on": today}
    )
    assert loan.status_code == 201, loan.get_json()
    loan_id = loan.get_json()["id"]
    assert loan.get_json()["principal"] == "250000.00"
    paid = post(
        client, f"/api/v1/loans/{loan_id}/repayments", token, {"amount": "50000.00", "on": today}
    )
    assert paid.status_code == 201
    assert paid.get_json()["outstanding"] == "200000.00"
    too_much = post(
        client, f"/api/v1/loans/{loan_id}/repayments", token, {"amount": "999999.00", "on": today}
    )
    assert too_much.status_code == 422
    defaulted = post(client, f"/api/v1/loans/{loan_id}/default", token, {"on": today})
    assert defaulted.get_json()["status"] == "defaulted"
    listed = client.get("/api/v1/loans", headers=bearer(token)).get_json()
    assert [item["id"] for item in listed["items"]] == [loan_id]
    # The other bank's client sees no such loan.
    other = token_for(client, world.other.creds)
    assert client.get(f"/api/v1/loans/{loan_id}", headers=bearer(other)).status_code == 404


def test_pool_eligibility_without_a_pool_says_so(client, world):
    token = token_for(client, world.bank.creds)
    e = world.enterprises["authorized"].id
    response = client.get(
        f"/api/v1/pool/eligibility?enterprise_id={e}&product_id={world.bank.product_id}&amount=300000.00",
        headers=bearer(token),
    )
    body = response.get_json()
    assert response.status_code == 200
    assert body["eligible"] is False
    assert body["checks"][0]["rule"] == "pool"


def test_other_banks_application_is_not_found_even_when_the_enterprise_shares(client, world):
    token = token_for(client, world.other.creds)
    response = client.get(f"/api/v1/applications/{world.apps['authorized']}", headers=bearer(token))
    assert response.status_code == 404


def test_needs_list_and_a_need_not_open_to_the_bank(client, world):
    token = token_for(client, world.bank.creds)
    assert client.get("/api/v1/needs", headers=bearer(token)).get_json()["items"] == []
    response = post(
        client, "/api/v1/needs/12345/take", token, {"product_id": world.bank.product_id}
    )
    assert response.status_code == 404


def test_rate_limit_gives_429_with_retry_after(client, world, app):
    token = token_for(client, world.bank.creds)
    app.config["API_RATE_LIMIT_CLIENT"] = "3 per minute"
    try:
        codes = [client.get("/api/v1/loans", headers=bearer(token)).status_code for _ in range(4)]
    finally:
        app.config.pop("API_RATE_LIMIT_CLIENT")
    assert codes == [200, 200, 200, 429]
    app.config["API_RATE_LIMIT_CLIENT"] = "3 per minute"
    try:
        response = client.get("/api/v1/loans", headers=bearer(token))
    finally:
        app.config.pop("API_RATE_LIMIT_CLIENT")
    assert response.mimetype == PROBLEM
    assert int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["status"] == 429


def test_statuses_are_iso_and_decimals_are_strings(client, world):
    token = token_for(client, world.bank.creds)
    item = client.get("/api/v1/applications", headers=bearer(token)).get_json()["items"][0]
    assert item["amount"] == "300000.00"
    assert dt.datetime.fromisoformat(item["submitted_at"]).tzinfo is not None
    assert item["status"] == ApplicationStatus.SUBMITTED.value
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IdempotentRequest)) == 0
