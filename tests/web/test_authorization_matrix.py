"""The UI authorization matrix: a bank sees an enterprise's data exactly where a live sharing
grant names it (or every bank) — on every bank page that takes an enterprise or need id, in
lists and counts — and an unauthorized object looks exactly like a non-existent one.

Applications, loans and claims are the bank's own records of its dealings with an enterprise
(addressed to it, not shared by a grant): for those, another bank's ids and non-existent ids
must look the same, and the credit profile behind them still needs a live grant.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import authorization as authz
from app.services.authorization import GrantRequest
from models import (
    Authorization,
    AuthorizationKind,
    Enterprise,
    FinancingNeed,
    NeedStatus,
    Organization,
    OrgKind,
    User,
)
from tests.conftest import csrf_token, login

LABELS = ("mine", "all_banks", "other_bank", "never", "revoked", "expired", "paused")
ALLOWED = {"mine", "all_banks"}
MISSING = 987_654


def _share(user, enterprise, bank=None, now=None):
    grant = authz.grant(
        user,
        enterprise,
        GrantRequest(
            kind=AuthorizationKind.SHARING,
            scopes=("tax",),
            grantee_org_id=bank.id if bank else None,
            all_banks=bank is None,
        ),
        now=now,
    )
    db.session.flush()
    return grant


@pytest.fixture
def world(app, factory):
    """Bank A's user; an enterprise (with an open need) in every situation towards bank A."""
    bank_a = factory.user(OrgKind.BANK)
    bank_b_id = factory.organization(OrgKind.BANK)
    accounts = {label: factory.enterprise() for label in LABELS}
    ids: dict[str, dict[str, int]] = {}
    with app.app_context():
        a = db.session.get(Organization, bank_a.organization_id)
        b = db.session.get(Organization, bank_b_id)
        now = dt.datetime.now(dt.UTC)
        for label in LABELS:
            account = accounts[label]
            user = db.session.get(User, account.user_id)
            enterprise = db.session.scalar(
                sa.select(Enterprise).where(Enterprise.organization_id == account.organization_id)
            )
            if label == "mine":
                _share(user, enterprise, a)
            elif label == "all_banks":
                _share(user, enterprise)
            elif label == "other_bank":
                _share(user, enterprise, b)
            elif label == "revoked":
                authz.revoke(user, _share(user, enterprise, a))
            elif label == "expired":
                _share(user, enterprise, a, now=now - dt.timedelta(days=400))
            elif label == "paused":
                authz.set_paused(user, _share(user, enterprise, a), True)
            need = FinancingNeed(
                enterprise_id=enterprise.id,
                amount=Decimal("300000"),
                term_months=12,
                purpose=f"需求-{label}",
                max_rate=Decimal("6"),
                status=NeedStatus.OPEN,
                created_by_user_id=user.id,
                expires_at=now + dt.timedelta(days=30),
            )
            db.session.add(need)
            db.session.flush()
            ids[label] = {"enterprise": enterprise.id, "need": need.id, "user": user.id}
            ids[label]["name"] = enterprise.name  # type: ignore[assignment]
        db.session.commit()
    return bank_a, ids


def _normalized(html: str, requested_id: int) -> str:
    """A page without what differs between any two requests: the CSRF token, and the id the
    person typed (echoed in the language switch's link back to this page)."""
    html = re.sub(
        r'(csrf-token" content=|name="csrf_token" value=|X-CSRFToken": )"[^"]*"', "", html
    )
    return re.sub(rf"/{requested_id}\b", "/ID", html)


def _take(client, need_id: int):
    return client.post(
        f"/bank/needs/{need_id}/take", data={"csrf_token": csrf_token(client, "/bank/")}
    )


@pytest.mark.parametrize("label", LABELS)
def test_enterprise_profile_page(client, world, label):
    bank, ids = world
    login(client, bank)
    response = client.get(f"/bank/enterprises/{ids[label]['enterprise']}")
    if label in ALLOWED:
        assert response.status_code == 200
        assert ids[label]["name"] in response.get_data(as_text=True)
    else:
        missing = client.get(f"/bank/enterprises/{MISSING}")
        assert response.status_code == missing.status_code == 404
        assert _normalized(
            response.get_data(as_text=True), ids[label]["enterprise"]
        ) == _normalized(missing.get_data(as_text=True), MISSING)
        assert ids[label]["name"] not in response.get_data(as_text=True)


@pytest.mark.parametrize("label", LABELS)
def test_taking_a_need(client, world, label):
    bank, ids = world
    login(client, bank)
    response = _take(client, ids[label]["need"])
    if label in ALLOWED:
        # Open to this bank: the page asks for one of its products (it has none).
        assert response.status_code == 302
        assert response.headers["Location"] == "/bank/needs"
    else:
        missing = _take(client, MISSING)
        assert response.status_code == missing.status_code == 404
        assert _normalized(response.get_data(as_text=True), ids[label]["need"]) == _normalized(
            missing.get_data(as_text=True), MISSING
        )


def test_lists_and_counts_hold_only_authorized_enterprises(client, world):
    bank, ids = world
    login(client, bank)
    pages = {
        path: client.get(path).get_data(as_text=True)
        for path in (
            "/bank/",
            "/bank/prospects",
            "/bank/needs",
            "/bank/applications",
            "/bank/loans",
            "/bank/claims",
        )
    }
    for label in LABELS:
        name, purpose = ids[label]["name"], f"需求-{label}"
        for path, html in pages.items():
            if label not in ALLOWED:
                assert name not in html, (label, path)
                assert purpose not in html, (label, path)
    prospects = pages["/bank/prospects"]
    for label in ALLOWED:
        assert ids[label]["name"] in prospects
    shown = set(re.findall(r"/bank/enterprises/(\d+)", prospects))
    assert shown == {str(ids[label]["enterprise"]) for label in ALLOWED}
    assert len(re.findall(r'<tr data-enterprise="', prospects)) == len(ALLOWED)


def test_the_very_next_request_after_a_revocation_is_refused(client, app, world):
    bank, ids = world
    login(client, bank)
    mine = ids["mine"]
    assert client.get(f"/bank/enterprises/{mine['enterprise']}").status_code == 200
    assert _take(client, mine["need"]).status_code == 302
    with app.app_context():
        enterprise = db.session.get(Enterprise, mine["enterprise"])
        user = db.session.get(User, mine["user"])
        live = db.session.scalars(
            sa.select(Authorization).where(
                Authorization.enterprise_id == enterprise.id, Authorization.revoked_at.is_(None)
            )
        ).all()
        for grant in live:
            authz.revoke(user, grant)
        db.session.commit()
    assert client.get(f"/bank/enterprises/{mine['enterprise']}").status_code == 404
    assert _take(client, mine["need"]).status_code == 404
    assert mine["name"] not in client.get("/bank/prospects").get_data(as_text=True)


def test_other_banks_applications_loans_and_claims_look_like_missing_ones(client, world):
    bank, _ids = world
    login(client, bank)
    for path in (
        f"/bank/applications/{MISSING}",
        f"/bank/claims/{MISSING}",
        f"/bank/claims/new/{MISSING}",
    ):
        assert client.get(path).status_code == 404
