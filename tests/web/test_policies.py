"""Support policies through the pages: the office publishes and decides, the enterprise
sees why it qualifies, claims with its own loan and follows the decision."""

import datetime as dt
import re
from decimal import Decimal

import sqlalchemy as sa

from app.extensions import db
from app.services import policies, workdays
from models import (
    Notification,
    OrgKind,
    PolicyApplication,
    PolicyApplicationStatus,
    PolicyStatus,
    Role,
    SupportPolicy,
    User,
)
from tests.conftest import csrf_token, login
from tests.services.test_policies import _bank_product, disbursed_loan, terms

TODAY = workdays.local_date()


def _client(app, account):
    client = app.test_client()
    client.set_cookie("lang", "en")
    login(client, account)
    return client


def _world(app, factory, *, publish=True, **overrides):
    """An enterprise with a disbursed loan, an office admin and (published) policy."""
    sme, bank, office = (
        factory.enterprise(),
        factory.user(OrgKind.BANK),
        factory.user(OrgKind.OFFICE),
    )
    with app.app_context():
        sme_user = db.session.get(User, sme.user_id)
        bank_user = db.session.get(User, bank.user_id)
        loan = disbursed_loan(sme_user, bank_user, _bank_product(bank_user))
        office_user = db.session.get(User, office.user_id)
        policy = policies.create(office_user, terms(**overrides))
        if publish:
            policies.publish(office_user, policy)
        db.session.commit()
        ids = (loan.id, policy.id)
    return sme, bank, office, *ids


POLICY_FORM = {
    "name": "首贷奖励", "kind": "first_loan_reward", "description": "", "basis": "第一条",
    "subsidy_rate_pp": "", "share_pct": "", "fixed_amount": "5000", "annual_cap": "",
    "period_start": (TODAY - dt.timedelta(days=30)).isoformat(),
    "period_end": (TODAY + dt.timedelta(days=30)).isoformat(),
    "total_budget_wan": "50", "first_loan_only": "y", "min_grade": "",
    "regions_allowed": "35", "industries_allowed": "", "industries_excluded": "",
    "regions_excluded": "",
}  # fmt: skip


def test_office_creates_publishes_and_closes_a_policy(app, client, login_as):
    login_as(OrgKind.OFFICE)
    token = csrf_token(client, "/office/policies/new")
    bad = client.post(
        "/office/policies/new",
        data={**POLICY_FORM, "first_loan_only": "", "csrf_token": token},
    )
    assert bad.status_code == 422
    assert 'data-field="first_loan_only">A first-loan reward is for first loans only.' in (
        bad.get_data(as_text=True)
    )
    saved = client.post("/office/policies/new", data={**POLICY_FORM, "csrf_token": token})
    assert saved.status_code == 302
    page = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert 'value="35"' in page and "Draft" in page
    with app.app_context():
        policy = db.session.scalar(sa.select(SupportPolicy))
        assert policy.fixed_amount == Decimal("5000.00")
        assert policy.total_budget == Decimal("500000.00") and policy.regions_allowed == "35"
        policy_id = policy.id
    client.post(f"/office/policies/{policy_id}/publish", data={"csrf_token": token})
    listing = client.get("/office/policies").get_data(as_text=True)
    assert "首贷奖励" in listing and "Published" in listing and "500,000.00" in listing
    edit = client.post(
        f"/office/policies/{policy_id}", data={**POLICY_FORM, "name": "改", "csrf_token": token}
    )
    assert edit.status_code == 200  # a published policy is not edited
    client.post(f"/office/policies/{policy_id}/close", data={"csrf_token": token})
    with app.app_context():
        policy = db.session.get(SupportPolicy, policy_id)
        assert policy.name == "首贷奖励" and policy.status is PolicyStatus.CLOSED


def test_banks_and_enterprises_get_403_and_office_viewers_cannot_manage(app, factory):
    for kind in (OrgKind.BANK, OrgKind.ENTERPRISE):
        client = _client(app, factory.user(kind))
        for path in ("/office/policies", "/office/policies/new", "/office/policies/applications"):
            assert client.get(path).status_code == 403, (kind, path)
    viewer = _client(app, factory.user(OrgKind.OFFICE, Role.VIEWER))
    assert viewer.get("/office/policies").status_code == 200
    assert viewer.get("/office/policies/new").status_code == 403
    token = csrf_token(viewer, "/office/policies")
    assert viewer.post("/office/policies/new", data={"csrf_token": token}).status_code == 403
    decide = viewer.post("/office/policies/applications/1/approve", data={"csrf_token": token})
    assert decide.status_code == 403
    bank = _client(app, factory.user(OrgKind.BANK))
    assert bank.get("/enterprise/policies").status_code == 403


def test_enterprise_sees_why_applies_and_follows_the_decision(app, factory):
    sme, _bank, office, loan_id, policy_id = _world(app, factory, annual_cap=Decimal("5000"))
    _s, _b, _o, _other_loan, strict_id = _world(
        app, factory, name="仅限厦门", regions_allowed=("3502",)
    )
    sme_client = _client(app, sme)
    page = sme_client.get("/enterprise/policies").get_data(as_text=True)
    strict = page[page.index(f'data-policy="{strict_id}"') :]
    assert 'data-qualifies="no"' in strict[:80]
    assert 'data-rule="region" data-passed="no"' in strict and "registered in 3502" in strict
    ours = page[page.index(f'data-policy="{policy_id}"') :]
    assert 'data-qualifies="yes"' in ours[:80]
    assert 'data-condition="loan_period">✓' in ours
    assert "2,000.00" in ours and "min(2,000.00, 5,000.00 − 0.00) = 2,000.00" in ours

    token = csrf_token(sme_client, "/enterprise/policies")
    applied = sme_client.post(
        f"/enterprise/policies/{policy_id}/apply", data={"loan_id": loan_id, "csrf_token": token}
    )
    assert applied.status_code == 302
    again = sme_client.post(
        f"/enterprise/policies/{policy_id}/apply", data={"loan_id": loan_id, "csrf_token": token}
    )
    assert again.status_code == 422
    assert "You have applied for every loan that qualifies." in again.get_data(as_text=True)
    mine = sme_client.get("/enterprise/policies/applications").get_data(as_text=True)
    assert "Submitted, awaiting the office" in mine and "2,000.00" in mine

    office_client = _client(app, office)
    queue = office_client.get("/office/policies/applications").get_data(as_text=True)
    application_id = int(re.search(r'data-application="(\d+)"', queue).group(1))
    otoken = csrf_token(office_client, "/office/policies/applications")
    no_reason = office_client.post(
        f"/office/policies/applications/{application_id}/reject",
        data={"reason": " ", "csrf_token": otoken},
        follow_redirects=True,
    )
    assert "Give the enterprise a reason." in no_reason.get_data(as_text=True)
    too_much = office_client.post(
        f"/office/policies/applications/{application_id}/approve",
        data={"amount": "2000.01", "csrf_token": otoken},
        follow_redirects=True,
    )
    assert "At most 2,000.00 CNY under the policy" in too_much.get_data(as_text=True)
    ok = office_client.post(
        f"/office/policies/applications/{application_id}/approve",
        data={"amount": "1800", "csrf_token": otoken},
        follow_redirects=True,
    )
    assert "Approved; the enterprise has been told." in ok.get_data(as_text=True)
    listing = office_client.get("/office/policies").get_data(as_text=True)
    assert "1,800.00" in listing and "998,200.00" in listing  # approved, remaining

    mine = sme_client.get("/enterprise/policies/applications").get_data(as_text=True)
    assert ">Approved<" in mine and "1,800.00" in mine
    with app.app_context():
        note = db.session.scalar(
            sa.select(Notification).where(
                Notification.user_id == sme.user_id, Notification.kind == "policy.approved"
            )
        )
        assert note is not None
    opened = sme_client.get(f"/notifications/{note.id}")
    assert opened.headers["Location"].endswith("/enterprise/policies/applications")


def test_reject_with_reason_reaches_the_enterprise(app, factory):
    sme, _bank, office, loan_id, policy_id = _world(app, factory)
    with app.app_context():
        user = db.session.get(User, sme.user_id)
        application = policies.apply(
            user, db.session.get(SupportPolicy, policy_id), policies.own_loan(user, loan_id)
        )
        db.session.commit()
        application_id = application.id
    office_client = _client(app, office)
    token = csrf_token(office_client, "/office/policies/applications")
    office_client.post(
        f"/office/policies/applications/{application_id}/reject",
        data={"reason": "贷款用途不符合政策要求", "csrf_token": token},
    )
    page = _client(app, sme).get("/enterprise/policies/applications").get_data(as_text=True)
    assert ">Rejected<" in page and "贷款用途不符合政策要求" in page
    with app.app_context():
        stored = db.session.get(PolicyApplication, application_id)
        assert stored.status is PolicyApplicationStatus.REJECTED


def test_another_enterprises_loan_is_refused_and_its_claims_are_not_shown(app, factory):
    sme, _bank, _office, loan_id, policy_id = _world(app, factory)
    other = factory.enterprise()
    with app.app_context():
        user = db.session.get(User, sme.user_id)
        policies.apply(
            user, db.session.get(SupportPolicy, policy_id), policies.own_loan(user, loan_id)
        )
        db.session.commit()
    other_client = _client(app, other)
    token = csrf_token(other_client, "/enterprise/policies")
    refused = other_client.post(
        f"/enterprise/policies/{policy_id}/apply", data={"loan_id": loan_id, "csrf_token": token}
    )
    assert refused.status_code == 404
    page = other_client.get("/enterprise/policies/applications").get_data(as_text=True)
    assert "No applications yet." in page and "2,000.00" not in page
    listing = other_client.get("/enterprise/policies").get_data(as_text=True)
    assert "no disbursed loan to claim for yet" in listing


def test_guarantee_fee_claim_needs_the_fee(app, factory):
    from models import PolicyKind

    sme, _bank, _office, loan_id, policy_id = _world(
        app,
        factory,
        kind=PolicyKind.GUARANTEE_FEE_SUBSIDY,
        subsidy_rate_pp=None,
        share_pct=Decimal("50"),
    )
    client = _client(app, sme)
    page = client.get("/enterprise/policies").get_data(as_text=True)
    assert "Depends on the guarantee fee you paid" in page
    token = csrf_token(client, "/enterprise/policies")
    missing = client.post(
        f"/enterprise/policies/{policy_id}/apply", data={"loan_id": loan_id, "csrf_token": token}
    )
    assert missing.status_code == 422
    assert "Enter the guarantee fee you paid for this loan." in missing.get_data(as_text=True)
    done = client.post(
        f"/enterprise/policies/{policy_id}/apply",
        data={"loan_id": loan_id, "guarantee_fee_paid": "3,000", "csrf_token": token},
    )
    assert done.status_code == 302
    page = client.get("/enterprise/policies/applications").get_data(as_text=True)
    assert "3,000.00 × 50.000% = 1,500.00" in page
