"""Financing needs: consent to post, who sees them, taking one (also under a race), reopening."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import applications, authorization, needs, products, workdays
from app.services.accounts import AccountError, PermissionRefused
from models import (
    ApplicationStatus,
    Authorization,
    FinancingNeed,
    LoanApplication,
    LoanProduct,
    NeedStatus,
    Notification,
    OrgKind,
    ProductType,
    RepaymentMethod,
    Role,
    User,
)
from models.base import utcnow
from tests.conftest import Factory

S = ApplicationStatus


def _product(bank, name="信用快贷", *, amount_max="1000000", rate_min="3.5", term_max=24):
    product = products.create_draft(
        bank,
        products.ProductTerms(
            name=name, product_type=ProductType.CREDIT, amount_min=Decimal("50000"),
            amount_max=Decimal(amount_max), term_min_months=3, term_max_months=term_max,
            rate_min=Decimal(rate_min), rate_max=Decimal("6.5"),
            repayment_method=RepaymentMethod.EQUAL_INSTALLMENT, response_days=5,
        ),
    )  # fmt: skip
    products.publish(bank, product)
    return product


def _world(factory: Factory):
    sme = db.session.get(User, factory.enterprise().user_id)
    bank_a = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    bank_b = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    bank_c = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    product_a = _product(bank_a, "甲行信用贷")
    product_b = _product(bank_b, "乙行税易贷")
    _product(bank_c, "丙行大额贷", amount_max="100000")  # never fits a 300,000 need
    db.session.commit()
    return sme, bank_a, bank_b, bank_c, product_a, product_b


@pytest.fixture
def world(app_ctx, factory):
    return _world(factory)


TERMS = needs.NeedTerms(Decimal("300000"), 12, "采购原材料", Decimal("5.0"))


def test_posting_needs_explicit_consent_and_creates_an_all_banks_grant(world):
    sme, *_ = world
    with pytest.raises(AccountError) as err:
        needs.post(sme, TERMS, confirm_sharing=False)
    assert err.value.field == "confirm_sharing"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(FinancingNeed)) == 0
    need = needs.post(sme, TERMS, confirm_sharing=True)
    grant = db.session.get(Authorization, need.sharing_authorization_id)
    assert grant.all_banks and grant.grantee_org_id is None
    assert grant.valid_until >= need.expires_at
    assert need.expires_at - need.created_at == dt.timedelta(days=needs.DEFAULT_DAYS)
    # A second need within the grant's life reuses it without asking again.
    other = needs.post(
        sme, needs.NeedTerms(Decimal("200000"), 6, "周转", Decimal("5"), 10), confirm_sharing=False
    )
    assert other.sharing_authorization_id == grant.id


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        (needs.NeedTerms(Decimal(0), 12, "x", Decimal(5)), "amount"),
        (needs.NeedTerms(Decimal("-1"), 12, "x", Decimal(5)), "amount"),
        (needs.NeedTerms(Decimal("100.001"), 12, "x", Decimal(5)), "amount"),
        (needs.NeedTerms(Decimal("1000000000"), 12, "x", Decimal(5)), "amount"),
        (needs.NeedTerms(Decimal(1000), 0, "x", Decimal(5)), "term_months"),
        (needs.NeedTerms(Decimal(1000), 12, "  ", Decimal(5)), "purpose"),
        (needs.NeedTerms(Decimal(1000), 12, "x", Decimal(0)), "max_rate"),
        (needs.NeedTerms(Decimal(1000), 12, "x", Decimal("24.01")), "max_rate"),
        (needs.NeedTerms(Decimal(1000), 12, "x", Decimal(5), 0), "valid_days"),
        (needs.NeedTerms(Decimal(1000), 12, "x", Decimal(5), 91), "valid_days"),
    ],
)
def test_bad_terms_name_the_field_and_create_nothing(world, terms, field):
    sme, *_ = world
    with pytest.raises(AccountError) as err:
        needs.post(sme, terms, confirm_sharing=True)
    assert err.value.field == field
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(FinancingNeed)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Authorization)) == 0


def test_parse_terms_reads_the_form_and_names_bad_fields():
    terms = needs.parse_terms("30", "12", "周转", "4.5", "")
    assert terms.amount == Decimal("300000") and terms.valid_days == needs.DEFAULT_DAYS
    for args, field in [
        (("abc", "12", "x", "4", "30"), "amount"),
        (("NaN", "12", "x", "4", "30"), "amount"),
        (("30", "twelve", "x", "4", "30"), "term_months"),
        (("30", "12", "x", "", "30"), "max_rate"),
        (("30", "12", "x", "4", "-3"), "valid_days"),
    ]:
        with pytest.raises(AccountError) as err:
            needs.parse_terms(*args)
        assert err.value.field == field


def test_a_need_is_shown_only_to_banks_with_a_fitting_product(world):
    sme, bank_a, bank_b, bank_c, *_ = world
    need = needs.post(sme, TERMS, confirm_sharing=True)
    assert [r.need.id for r in needs.visible_to_bank(bank_a)] == [need.id]
    assert [r.need.id for r in needs.visible_to_bank(bank_b)] == [need.id]
    assert needs.visible_to_bank(bank_c) == []  # its only product lends at most 100,000
    # Banks with a fitting product were told; the bank without one was not.
    told = set(
        db.session.scalars(
            sa.select(User.organization_id)
            .join(Notification, Notification.user_id == User.id)
            .where(Notification.kind == "need.posted")
        )
    )
    assert told == {bank_a.organization_id, bank_b.organization_id}


def test_a_rate_ceiling_below_the_products_lowest_rate_hides_the_need(world):
    sme, bank_a, *_ = world
    needs.post(
        sme, needs.NeedTerms(Decimal("300000"), 12, "x", Decimal("3.0")), confirm_sharing=True
    )
    assert needs.visible_to_bank(bank_a) == []


def test_revoking_the_grant_hides_the_need_at_once_and_taking_is_refused(world):
    sme, bank_a, _b, _c, product_a, _pb = world
    need = needs.post(sme, TERMS, confirm_sharing=True)
    db.session.commit()
    authorization.revoke(sme, db.session.get(Authorization, need.sharing_authorization_id))
    db.session.commit()
    assert needs.visible_to_bank(bank_a) == []
    with pytest.raises(PermissionRefused):
        needs.take(bank_a, need, product_a)
    assert need.status is NeedStatus.OPEN


def test_taking_makes_an_application_under_review_with_a_deadline(world):
    sme, bank_a, bank_b, _c, product_a, product_b = world
    need = needs.post(sme, TERMS, confirm_sharing=True)
    app = needs.take(bank_a, need, product_a)
    assert need.status is NeedStatus.TAKEN and need.taken_by_org_id == bank_a.organization_id
    assert app.status is S.UNDER_REVIEW and app.need_id == need.id
    assert (app.amount, app.term_months, app.purpose) == (need.amount, 12, "采购原材料")
    assert app.respond_by is not None and app.respond_by > app.submitted_at
    assert [e.to_status for e in app.events] == ["submitted", "under_review"]
    assert needs.visible_to_bank(bank_b) == []  # gone for everyone else
    with pytest.raises(AccountError):
        needs.take(bank_b, need, product_b)
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Notification)
            .where(Notification.kind == "need.taken")
        )
        == 1
    )


def test_a_bank_cannot_take_with_another_banks_product_nor_a_viewer(world, factory):
    sme, bank_a, _b, _c, _pa, product_b = world
    need = needs.post(sme, TERMS, confirm_sharing=True)
    db.session.commit()
    with pytest.raises(AccountError):
        needs.take(bank_a, need, product_b)
    viewer = db.session.get(
        User, factory.user(OrgKind.BANK, Role.VIEWER, org_id=bank_a.organization_id).user_id
    )
    with pytest.raises(PermissionRefused):
        needs.take(viewer, need, _pa)
    with pytest.raises(PermissionRefused):
        needs.visible_to_bank(sme)


def test_a_rejected_need_reopens_for_the_other_banks_only(world):
    sme, bank_a, bank_b, _c, product_a, _pb = world
    need = needs.post(sme, TERMS, confirm_sharing=True)
    app = needs.take(bank_a, need, product_a)
    applications.reject(bank_a, app, ["policy"])
    assert need.status is NeedStatus.OPEN and need.taken_by_org_id is None
    assert needs.visible_to_bank(bank_a) == []  # had it once
    assert [r.need.id for r in needs.visible_to_bank(bank_b)] == [need.id]
    kinds = set(db.session.scalars(sa.select(Notification.kind)))
    assert {"need.reopened", "application.rejected"} <= kinds


def test_a_disbursed_need_is_fulfilled(world):
    from app.services import loans

    sme, bank_a, _b, _c, product_a, _pb = world
    need = needs.post(sme, TERMS, confirm_sharing=True)
    app = needs.take(bank_a, need, product_a)
    applications.make_offer(
        bank_a, app, amount=Decimal("300000"), rate=Decimal("4"), term_months=12,
        fee=Decimal(0), valid_until=workdays.local_date() + dt.timedelta(days=5),
    )  # fmt: skip
    applications.accept(sme, app)
    loans.disburse(bank_a, app, workdays.local_date())
    assert app.status is S.DISBURSED and need.status is NeedStatus.FULFILLED


def test_withdrawing_revokes_the_grant_made_for_the_need(world):
    sme, bank_a, *_ = world
    need = needs.post(sme, TERMS, confirm_sharing=True)
    needs.withdraw(sme, need)
    grant = db.session.get(Authorization, need.sharing_authorization_id)
    assert need.status is NeedStatus.WITHDRAWN and grant.revoked_at is not None
    assert needs.visible_to_bank(bank_a) == []
    with pytest.raises(AccountError):
        needs.withdraw(sme, need)


def test_withdrawing_keeps_a_grant_an_open_application_relies_on(world):
    sme, bank_a, _b, _c, product_a, _pb = world
    first = needs.post(sme, TERMS, confirm_sharing=True)
    needs.take(bank_a, first, product_a)
    second = needs.post(
        sme, needs.NeedTerms(Decimal("200000"), 6, "周转", Decimal("5"), 10), confirm_sharing=False
    )
    needs.withdraw(sme, second)
    assert db.session.get(Authorization, second.sharing_authorization_id).revoked_at is None


def test_another_enterprise_cannot_withdraw(world, factory):
    sme, *_ = world
    need = needs.post(sme, TERMS, confirm_sharing=True)
    db.session.commit()
    stranger = db.session.get(User, factory.enterprise().user_id)
    with pytest.raises(PermissionRefused):
        needs.withdraw(stranger, need)
    assert need.status is NeedStatus.OPEN


def test_an_expired_need_is_neither_shown_nor_taken(world):
    sme, bank_a, _b, _c, product_a, _pb = world
    need = needs.post(
        sme, needs.NeedTerms(**{**TERMS.__dict__, "valid_days": 1}), confirm_sharing=True
    )
    later = utcnow() + dt.timedelta(days=2)
    assert needs.visible_to_bank(bank_a, later) == []
    with pytest.raises((AccountError, PermissionRefused)):
        needs.take(bank_a, need, product_a, later)


@pytest.mark.postgres
def test_two_banks_racing_for_one_need_exactly_one_wins(pg_app):
    """Eight banks take the same need at the same moment on PostgreSQL: one application."""
    factory = Factory(pg_app)
    with pg_app.app_context():
        sme = db.session.get(User, factory.enterprise().user_id)
        bank_users = [factory.user(OrgKind.BANK) for _ in range(8)]
        product_ids = []
        for account in bank_users:
            product_ids.append(_product(db.session.get(User, account.user_id)).id)
        need_id = needs.post(sme, TERMS, confirm_sharing=True).id
        db.session.commit()
        db.session.remove()
    results: list[str] = []
    barrier = threading.Barrier(len(bank_users))

    def worker(account, product_id):
        with pg_app.app_context():
            user = db.session.get(User, account.user_id)
            need = db.session.get(FinancingNeed, need_id)
            product = db.session.get(LoanProduct, product_id)
            barrier.wait()
            try:
                needs.take(user, need, product)
                db.session.commit()
                results.append("won")
            except AccountError:
                db.session.rollback()
                results.append("lost")
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=worker, args=(a, p))
        for a, p in zip(bank_users, product_ids, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["lost"] * 7 + ["won"]
    with pg_app.app_context():
        count = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(LoanApplication)
            .where(LoanApplication.need_id == need_id)
        )
        assert count == 1
        assert db.session.get(FinancingNeed, need_id).status is NeedStatus.TAKEN


def test_withdrawing_leaves_a_grant_the_enterprise_gave_before(world):
    sme, *_ = world
    enterprise = needs._enterprise_of(sme)
    own = authorization.grant(
        sme, enterprise,
        authorization.GrantRequest(
            kind=authorization.AuthorizationKind.SHARING, scopes=("tax",), all_banks=True,
            valid_days=365, data_life_days=365,
        ),
    )  # fmt: skip
    need = needs.post(sme, TERMS, confirm_sharing=False)  # reuses it: nothing new to consent to
    assert need.sharing_authorization_id == own.id and not need.owns_sharing_grant
    needs.withdraw(sme, need)
    assert own.revoked_at is None


def test_a_banks_needs_are_read_without_a_parameter_per_shared_enterprise(world, factory):
    """The sharing grants are a condition of the needs' SELECT, not a list of enterprise ids
    sent as parameters (PostgreSQL refuses more than 65,535 in a statement; a province's
    bank may be shared with more enterprises than that): enterprises sharing with the bank
    without a need add no parameter to what reading its needs sends."""
    from flask import current_app

    from tests.api.conftest import enterprise_of, share
    from tests.support.list_pages import capture

    sme, bank_a, *_ = world
    need = needs.post(sme, TERMS, confirm_sharing=True)
    db.session.commit()

    def most_parameters() -> int:
        with capture(current_app._get_current_object()) as found:
            assert [n.need.id for n in needs.visible_to_bank(bank_a)] == [need.id]
        return max(
            len(p) if isinstance(p, dict | list | tuple) else 0 for _s, p in found.statements
        )

    few = most_parameters()
    users = [factory.enterprise().user_id for _ in range(12)]
    for user_id in users:
        other = db.session.get(User, user_id)
        share(other, enterprise_of(other), bank_a.organization_id)
    db.session.commit()
    assert len(authorization.shared_with_bank(bank_a.organization)) == 13
    assert most_parameters() == few
