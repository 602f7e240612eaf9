"""The application state machine: legal moves, illegal ones refused, deadlines in working days."""

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import applications, products, workdays
from app.services.accounts import AccountError, PermissionRefused
from app.services.applications import IllegalTransition
from models import (
    ApplicationEvent,
    ApplicationStatus,
    AuditEvent,
    Authorization,
    AuthorizationKind,
    OrgKind,
    ProductType,
    RepaymentMethod,
    Role,
    User,
)

S = ApplicationStatus


@pytest.fixture
def world(app_ctx, factory):
    sme = db.session.get(User, factory.enterprise().user_id)
    bank = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    other_bank = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    product = products.create_draft(
        bank,
        products.ProductTerms(
            name="信用快贷", product_type=ProductType.CREDIT, amount_min=Decimal("50000"),
            amount_max=Decimal("1000000"), term_min_months=3, term_max_months=24,
            rate_min=Decimal("3.5"), rate_max=Decimal("6.5"),
            repayment_method=RepaymentMethod.EQUAL_INSTALLMENT, response_days=5,
        ),
    )  # fmt: skip
    products.publish(bank, product)
    db.session.commit()
    return sme, bank, other_bank, product


def submitted(world, now=None):
    sme, _bank, _other, product = world
    app = applications.create(sme, product, Decimal("300000"), 12, "采购原材料")
    applications.submit(sme, app, confirm_sharing=True, now=now)
    return app


def test_full_happy_path_records_every_transition(world):
    sme, bank, _other, _product = world
    app = submitted(world)
    applications.start_review(bank, app)
    applications.make_offer(
        bank, app, amount=Decimal("250000"), rate=Decimal("4.2"), term_months=12,
        fee=Decimal("500"), valid_until=workdays.local_date() + dt.timedelta(days=10),
    )  # fmt: skip
    applications.accept(sme, app)
    assert app.status is S.ACCEPTED
    moves = [(e.from_status, e.to_status) for e in app.events]
    assert moves == [
        (None, "draft"), ("draft", "submitted"), ("submitted", "under_review"),
        ("under_review", "offered"), ("offered", "accepted"),
    ]  # fmt: skip
    assert all(e.actor_user_id for e in app.events)
    actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert {"application.submitted", "application.offered", "application.accepted"} <= actions


def test_submitting_creates_a_sharing_grant_only_with_confirmation(world):
    sme, bank, _other, product = world
    app = applications.create(sme, product, Decimal("300000"), 12, "周转")
    with pytest.raises(AccountError) as err:
        applications.submit(sme, app, confirm_sharing=False)
    assert err.value.field == "confirm_sharing"
    assert app.status is S.DRAFT
    applications.submit(sme, app, confirm_sharing=True)
    grant = db.session.get(Authorization, app.sharing_authorization_id)
    assert grant.kind is AuthorizationKind.SHARING and grant.grantee_org_id == bank.organization_id


@pytest.mark.parametrize(
    "move",
    [
        lambda sme, bank, app: applications.accept(sme, app),  # not offered yet
        lambda sme, bank, app: applications.decline(sme, app),
        lambda sme, bank, app: (
            applications.make_offer(
                bank,
                app,
                amount=Decimal("60000"),
                rate=Decimal("4"),
                term_months=6,
                fee=Decimal(0),
                valid_until=workdays.local_date() + dt.timedelta(days=3),
            )
            or applications.start_review(bank, app)
        ),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(world, move):
    sme, bank, _other, _product = world
    app = submitted(world)
    applications.reject(bank, app, ["policy"])
    before = len(app.events)
    with pytest.raises(IllegalTransition):
        move(sme, bank, app)
    assert app.status is S.REJECTED and len(app.events) == before


def test_each_side_moves_only_its_own_steps(world, factory):
    sme, bank, other_bank, _product = world
    viewer_id = factory.user(OrgKind.BANK, Role.VIEWER, org_id=bank.organization_id).user_id
    app = submitted(world)
    with pytest.raises(PermissionRefused):
        applications.start_review(sme, app)  # the enterprise cannot review
    with pytest.raises(PermissionRefused):
        applications.start_review(other_bank, app)  # nor another bank
    with pytest.raises(PermissionRefused):
        applications.withdraw(bank, app)  # the bank cannot withdraw it
    viewer = db.session.get(User, viewer_id)
    with pytest.raises(PermissionRefused):
        applications.start_review(viewer, app)
    applications.withdraw(sme, app)
    assert app.status is S.WITHDRAWN


@pytest.mark.parametrize(
    "amount,term,purpose,field",
    [
        (Decimal("10000"), 12, "x", "amount"),
        (Decimal("2000000"), 12, "x", "amount"),
        (Decimal("300000"), 0, "x", "term_months"),
        (Decimal("300000"), 36, "x", "term_months"),
        (Decimal("300000"), 12, "  ", "purpose"),
    ],
)
def test_bad_applications_create_nothing(world, amount, term, purpose, field):
    sme, _bank, _other, product = world
    with pytest.raises(AccountError) as err:
        applications.create(sme, product, amount, term, purpose)
    assert err.value.field == field
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApplicationEvent)) == 0


def test_one_open_application_per_product(world):
    sme, _bank, _other, product = world
    submitted(world)
    with pytest.raises(AccountError, match="already have an open application"):
        applications.create(sme, product, Decimal("100000"), 6, "再来一次")


def test_offers_outside_the_product_and_rejections_without_reasons_are_refused(world):
    _sme, bank, _other, _product = world
    app = submitted(world)
    tomorrow = workdays.local_date() + dt.timedelta(days=1)
    with pytest.raises(AccountError) as err:
        applications.make_offer(
            bank,
            app,
            amount=Decimal("250000"),
            rate=Decimal("9"),
            term_months=12,
            fee=Decimal(0),
            valid_until=tomorrow,
        )
    assert err.value.field == "rate"
    with pytest.raises(AccountError) as err:
        applications.make_offer(
            bank,
            app,
            amount=Decimal("250000"),
            rate=Decimal("4"),
            term_months=12,
            fee=Decimal(0),
            valid_until=workdays.local_date(),
        )
    assert err.value.field == "valid_until"
    with pytest.raises(AccountError):
        applications.reject(bank, app, [])
    with pytest.raises(AccountError) as err:
        applications.reject(bank, app, ["other"], "")
    assert err.value.field == "text"
    assert app.status is S.SUBMITTED


def test_deadline_counts_working_days_across_the_spring_festival(world):
    submitted_at = dt.datetime(2026, 2, 13, 2, 0, tzinfo=dt.UTC)  # Friday before the holiday
    app = submitted(world, now=submitted_at)
    # The expected day from the official calendar itself: five working days later.
    expected_day = workdays.add_working_days(submitted_at.date(), 5)
    assert (expected_day - submitted_at.date()).days > 7  # the holiday week does not count
    local = app.respond_by.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert local.date() == expected_day and (local.hour, local.minute) == (23, 59)
    assert not applications.is_overdue(app, now=app.respond_by - dt.timedelta(minutes=1))
    assert applications.is_overdue(app, now=app.respond_by + dt.timedelta(minutes=1))
    assert [a.id for a in applications.overdue(now=app.respond_by + dt.timedelta(days=1))] == [
        app.id
    ]


def test_a_bank_sees_an_application_only_while_shared_or_once_accepted(world):
    """Revoking the sharing grant hides an open application from the bank (pages, lists and
    API alike); an accepted offer is the bank's contract and stays."""
    sme, bank, _other, _product = world
    open_app = submitted(world)
    grant = db.session.get(Authorization, open_app.sharing_authorization_id)
    assert applications.visible_to_bank(open_app, bank.organization_id)
    assert applications.for_bank(bank) == [open_app]
    from app.services import authorization

    authorization.revoke(sme, grant)
    assert not applications.visible_to_bank(open_app, bank.organization_id)
    assert applications.for_bank(bank) == []

    # A second application, shared again, accepted, then the grant revoked: it stays.
    applications.withdraw(sme, open_app)
    second = submitted(world)
    applications.make_offer(
        bank, second, amount=Decimal("300000"), rate=Decimal("4"), term_months=12,
        fee=Decimal(0), valid_until=workdays.local_date() + dt.timedelta(days=5),
    )  # fmt: skip
    applications.accept(sme, second)
    authorization.revoke(sme, db.session.get(Authorization, second.sharing_authorization_id))
    assert applications.visible_to_bank(second, bank.organization_id)
    assert applications.for_bank(bank) == [second]
    assert not applications.visible_to_bank(second, _other.organization_id)
