"""The single policy function: who may collect or see what, now."""

import datetime as dt

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import authorization as authz
from app.services.accounts import AccountError, PermissionRefused
from app.services.authorization import Action, GrantRequest
from models import AuditEvent, AuthorizationKind, Enterprise, Organization, OrgKind, Role, User

NOW = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(app_ctx, factory):
    """An enterprise with its admin, two banks and the platform's view."""
    sme = factory.enterprise()
    bank_a = db.session.get(Organization, factory.organization(OrgKind.BANK, "甲银行"))
    bank_b = db.session.get(Organization, factory.organization(OrgKind.BANK, "乙银行"))
    user = db.session.get(User, sme.user_id)
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == sme.organization_id)
    )
    return user, enterprise, bank_a, bank_b


def share(user, enterprise, bank=None, scopes=("tax",), records=False, days=365, now=NOW):
    return authz.grant(
        user,
        enterprise,
        GrantRequest(
            kind=AuthorizationKind.SHARING,
            scopes=scopes,
            grantee_org_id=bank.id if bank else None,
            all_banks=bank is None,
            include_records=records,
            valid_days=days,
        ),
        now=now,
    )


def collect(user, enterprise, scopes=("tax",), months=24, now=NOW):
    return authz.grant(
        user,
        enterprise,
        GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=scopes, data_months=months),
        now=now,
    )


def test_nothing_is_allowed_without_a_grant(world):
    _user, enterprise, bank_a, _ = world
    assert authz.decide(bank_a, Action.VIEW_PROFILE, enterprise, now=NOW).reason == "no_grant"
    assert authz.decide(None, Action.COLLECT, enterprise, "tax", now=NOW).reason == "no_grant"


def test_sharing_with_one_bank_admits_that_bank_only(world):
    user, enterprise, bank_a, bank_b = world
    share(user, enterprise, bank_a)
    assert authz.decide(bank_a, Action.VIEW_PROFILE, enterprise, now=NOW).allowed
    assert not authz.decide(bank_b, Action.VIEW_PROFILE, enterprise, now=NOW).allowed


def test_sharing_with_every_bank(world):
    user, enterprise, bank_a, bank_b = world
    share(user, enterprise)
    assert authz.decide(bank_a, Action.VIEW_PROFILE, enterprise, now=NOW).allowed
    assert authz.decide(bank_b, Action.VIEW_PROFILE, enterprise, now=NOW).allowed


def test_records_need_the_scope_and_the_records_option(world):
    user, enterprise, bank_a, _ = world
    share(user, enterprise, bank_a, scopes=("tax",), records=False)
    assert (
        authz.decide(bank_a, Action.VIEW_RECORDS, enterprise, "tax", now=NOW).reason
        == "records_not_shared"
    )
    share(user, enterprise, bank_a, scopes=("tax",), records=True)
    assert authz.decide(bank_a, Action.VIEW_RECORDS, enterprise, "tax", now=NOW).allowed
    decision = authz.decide(bank_a, Action.VIEW_RECORDS, enterprise, "social_insurance", now=NOW)
    assert decision.reason == "scope_not_granted"


def test_revocation_bites_on_the_next_request(world):
    user, enterprise, bank_a, _ = world
    grant = share(user, enterprise, bank_a)
    assert authz.decide(bank_a, Action.VIEW_PROFILE, enterprise, now=NOW).allowed
    authz.revoke(user, grant, now=NOW + dt.timedelta(seconds=1))
    decision = authz.decide(
        bank_a, Action.VIEW_PROFILE, enterprise, now=NOW + dt.timedelta(seconds=2)
    )
    assert not decision.allowed and decision.reason == "revoked"


def test_expiry_needs_no_job(world):
    user, enterprise, bank_a, _ = world
    share(user, enterprise, bank_a, days=30)
    assert authz.decide(
        bank_a, Action.VIEW_PROFILE, enterprise, now=NOW + dt.timedelta(days=29)
    ).allowed
    later = authz.decide(bank_a, Action.VIEW_PROFILE, enterprise, now=NOW + dt.timedelta(days=30))
    assert later.reason == "expired"


def test_paused_then_resumed(world):
    user, enterprise, _bank, _ = world
    grant = collect(user, enterprise)
    authz.set_paused(user, grant, True, now=NOW)
    assert authz.decide(None, Action.COLLECT, enterprise, "tax", now=NOW).reason == "paused"
    authz.set_paused(user, grant, False, now=NOW)
    assert authz.decide(None, Action.COLLECT, enterprise, "tax", now=NOW).allowed


def test_collection_respects_scope_and_data_range(world):
    user, enterprise, bank_a, _ = world
    grant = collect(user, enterprise, scopes=("tax", "utilities"), months=12)
    assert grant.data_from == dt.date(2025, 11, 1)
    assert authz.decide(None, Action.COLLECT, enterprise, "utilities", now=NOW).allowed
    assert (
        authz.decide(None, Action.COLLECT, enterprise, "provident_fund", now=NOW).reason
        == "scope_not_granted"
    )
    old = authz.decide(None, Action.COLLECT, enterprise, "tax", month=dt.date(2025, 10, 1), now=NOW)
    assert old.reason == "outside_data_range"
    # A bank cannot collect; a collection grant lets no bank see anything.
    assert not authz.decide(bank_a, Action.COLLECT, enterprise, "tax", now=NOW).allowed
    assert not authz.decide(bank_a, Action.VIEW_PROFILE, enterprise, now=NOW).allowed


def test_office_and_other_enterprises_see_nothing(world, factory):
    user, enterprise, _bank, _ = world
    share(user, enterprise)
    db.session.commit()
    office = db.session.get(Organization, factory.organization(OrgKind.OFFICE))
    other = db.session.get(Organization, factory.enterprise().organization_id)
    for org in (office, other):
        assert authz.decide(org, Action.VIEW_PROFILE, enterprise, now=NOW).reason == "not_a_bank"
    assert authz.decide(user.organization, Action.VIEW_RECORDS, enterprise, "tax", now=NOW).allowed


def test_use_is_counted(world):
    user, enterprise, bank_a, _ = world
    grant = share(user, enterprise, bank_a)
    decision = authz.decide(bank_a, Action.VIEW_PROFILE, enterprise, now=NOW)
    authz.record_use(decision, now=NOW)
    authz.record_use(decision, now=NOW)
    db.session.refresh(grant)
    assert grant.use_count == 2 and grant.last_used_at == NOW


@pytest.mark.parametrize(
    "request_,field",
    [
        (GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=()), "scopes"),
        (GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=("gossip",)), "scopes"),
        (
            GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=("tax",), valid_days=400),
            "valid_days",
        ),
        (
            GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=("tax",), data_months=48),
            "data_months",
        ),
        (GrantRequest(kind=AuthorizationKind.SHARING, scopes=("tax",)), "grantee"),
        (
            GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=("tax",), all_banks=True),
            "grantee",
        ),
    ],
)
def test_bad_grants_are_refused_and_nothing_is_written(world, request_, field):
    user, enterprise, _bank, _ = world
    with pytest.raises(AccountError) as err:
        authz.grant(user, enterprise, request_, now=NOW)
    assert err.value.field == field
    assert authz.ledger(enterprise) == []


def test_never_open_ended_and_at_most_a_year(world):
    user, enterprise, bank_a, _ = world
    grant = share(user, enterprise, bank_a, days=366)
    assert grant.valid_until - grant.valid_from == dt.timedelta(days=366)


def test_only_the_enterprise_and_not_its_viewers_may_grant(world, factory):
    user, enterprise, bank_a, _ = world
    bank_user = db.session.get(User, factory.user(OrgKind.BANK, org_id=bank_a.id).user_id)
    with pytest.raises(PermissionRefused):
        share(bank_user, enterprise, bank_a)
    user.role = Role.VIEWER
    with pytest.raises(PermissionRefused):
        share(user, enterprise, bank_a)


def test_grant_and_revoke_are_audited(world):
    user, enterprise, bank_a, _ = world
    grant = share(user, enterprise, bank_a)
    authz.revoke(user, grant, now=NOW)
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions == ["authorization.grant", "authorization.revoke"]


def test_receipt_hash_can_be_checked_by_the_enterprise(world):
    import hashlib
    import json

    user, enterprise, bank_a, _ = world
    receipt = authz.receipt(share(user, enterprise, bank_a, scopes=("tax", "utilities")))
    body = {k: v for k, v in receipt.items() if k != "receipt_hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == receipt["receipt_hash"]
    assert receipt["grantee"] == {"type": "bank", "name": "甲银行", "id": bank_a.id}
    assert receipt["scopes"] == ["tax", "utilities"]
    assert receipt["consent_text"]["sha256"] == authz.consent_text_hash()


def test_collection_windows_in_one_query(world, factory):
    user, enterprise, _bank, _ = world
    collect(user, enterprise, scopes=("tax",), now=dt.datetime.now(dt.UTC))
    windows = authz.collection_windows("tax", [enterprise.uscc, "91350100M000100Y43"])
    assert set(windows) == {enterprise.uscc}
    assert authz.collection_windows("utilities", [enterprise.uscc]) == {}


@pytest.mark.parametrize(
    "situation",
    ["none", "profile_only", "tax_records", "all_banks", "revoked", "expired", "paused", "two"],
)
def test_the_view_decisions_are_decide_s_from_one_read_of_the_grants(world, factory, situation):
    """What a profile page asks at once gives exactly what ``decide`` gives one by one, for
    the bank, another bank, the enterprise itself and the office."""
    user, enterprise, bank_a, bank_b = world
    office = db.session.get(Organization, factory.organization(OrgKind.OFFICE))
    if situation == "profile_only":
        share(user, enterprise, bank_a, scopes=("tax", "utilities"))
    elif situation == "tax_records":
        share(user, enterprise, bank_a, scopes=("tax",), records=True)
    elif situation == "all_banks":
        share(user, enterprise, scopes=("tax", "social_insurance"), records=True)
    elif situation == "revoked":
        authz.revoke(user, share(user, enterprise, bank_a, records=True), now=NOW)
    elif situation == "expired":
        share(user, enterprise, bank_a, records=True, days=30, now=NOW - dt.timedelta(days=40))
    elif situation == "paused":
        authz.set_paused(user, share(user, enterprise, bank_a, records=True), True, now=NOW)
    elif situation == "two":  # the profile to bank A alone, social-insurance records to all
        share(user, enterprise, bank_a, scopes=("tax",))
        share(user, enterprise, scopes=("social_insurance",), records=True)
    scopes = ["tax", "social_insurance", "utilities", "provident_fund"]
    for org in (bank_a, bank_b, enterprise.organization, office, None):
        profile, records = authz.decide_for_view(org, enterprise, scopes, now=NOW)
        assert profile == authz.decide(org, Action.VIEW_PROFILE, enterprise, now=NOW)
        assert records == {
            s: authz.decide(org, Action.VIEW_RECORDS, enterprise, s, now=NOW) for s in scopes
        }
    profile, records = authz.decide_for_view(bank_a, enterprise, scopes, now=NOW)
    assert profile.allowed is (situation in ("profile_only", "tax_records", "all_banks", "two"))
    assert [s for s in scopes if records[s].allowed] == {
        "tax_records": ["tax"], "all_banks": ["tax", "social_insurance"],
        "two": ["social_insurance"],
    }.get(situation, [])  # fmt: skip


def test_uses_of_one_grant_are_counted_in_one_update(world):
    user, enterprise, bank_a, _ = world
    grant = share(user, enterprise, bank_a, scopes=("tax", "utilities"), records=True)
    profile, records = authz.decide_for_view(bank_a, enterprise, ["tax", "utilities"], now=NOW)
    updates: list[str] = []

    def count(conn, cursor, statement, parameters, context, many):
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        authz.record_uses([profile, *records.values(), authz.Decision(False, "no_grant", "")], NOW)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    db.session.refresh(grant)
    assert grant.use_count == 3 and grant.last_used_at == NOW
    assert len(updates) == 1
