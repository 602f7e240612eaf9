"""Past the bank's deadline: flagged once to everyone, routed on only with consent."""

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import applications, needs
from app.services.accounts import PermissionRefused
from app.services.applications import IllegalTransition
from models import (
    ApplicationStatus,
    Authorization,
    LoanApplication,
    Notification,
    OrgKind,
    User,
)
from models.base import utcnow
from tests.services.test_needs import TERMS, _product, _world

S = ApplicationStatus


@pytest.fixture
def world(app_ctx, factory):
    office = db.session.get(User, factory.user(OrgKind.OFFICE).user_id)
    return (*_world(factory), office)


def _submit(world, *, consent: bool):
    sme, _a, _b, _c, product_a, _pb, _office = world
    app = applications.create(sme, product_a, Decimal("300000"), 12, "采购")
    applications.submit(sme, app, confirm_sharing=True, route_on_overdue=consent)
    return app


def _after_deadline(app):
    return app.respond_by + dt.timedelta(minutes=1)


def _kinds_for(org_id):
    return sorted(
        db.session.scalars(
            sa.select(Notification.kind)
            .join(User, User.id == Notification.user_id)
            .where(User.organization_id == org_id)
        )
    )


def test_the_deadline_check_tells_office_bank_and_enterprise_once(world):
    sme, bank_a, _b, _c, _pa, _pb, office = world
    app = _submit(world, consent=False)
    assert applications.check_deadlines(app.respond_by - dt.timedelta(minutes=1)) == {
        "overdue_told": 0,
        "routed": 0,
    }
    later = _after_deadline(app)
    assert applications.check_deadlines(later) == {"overdue_told": 1, "routed": 0}
    assert applications.check_deadlines(later + dt.timedelta(hours=1))["overdue_told"] == 0
    for org in (sme.organization_id, bank_a.organization_id, office.organization_id):
        assert _kinds_for(org).count("application.overdue") == 1
    assert app.status is S.SUBMITTED  # no consent: it stays with the bank
    assert [a.id for a in applications.overdue(later)] == [app.id]


def test_with_consent_the_check_routes_to_the_next_matching_bank(world):
    sme, _bank_a, bank_b, _c, _pa, product_b, _office = world
    app = _submit(world, consent=True)
    result = applications.check_deadlines(_after_deadline(app))
    assert result == {"overdue_told": 1, "routed": 1}
    assert app.status is S.ROUTED
    successor = db.session.scalar(
        sa.select(LoanApplication).where(LoanApplication.routed_from_id == app.id)
    )
    assert successor.product_id == product_b.id and successor.status is S.SUBMITTED
    assert (successor.amount, successor.term_months) == (app.amount, app.term_months)
    assert successor.route_on_overdue and successor.route_consent_user_id == sme.id
    # The new bank can see the profile through a grant naming it, made under the consent.
    grant = db.session.get(Authorization, successor.sharing_authorization_id)
    assert grant.grantee_org_id == bank_b.organization_id
    assert "application.submitted" in _kinds_for(bank_b.organization_id)
    # The enterprise heard that it was routed (the platform acted for it).
    assert "application.routed" in _kinds_for(sme.organization_id)
    assert app not in applications.overdue(_after_deadline(app))


def test_routing_never_returns_to_a_bank_already_tried(world):
    _sme, _a, _b, _c, _pa, _pb, _office = world
    app = _submit(world, consent=True)
    applications.check_deadlines(_after_deadline(app))
    successor = db.session.scalar(
        sa.select(LoanApplication).where(LoanApplication.routed_from_id == app.id)
    )
    # Bank B is late as well: bank C cannot lend 300,000 and bank A was tried — nowhere to go.
    assert applications.check_deadlines(_after_deadline(successor)) == {
        "overdue_told": 1,
        "routed": 0,
    }
    assert successor.status is S.SUBMITTED
    assert "application.no_route" in _kinds_for(successor.enterprise.organization_id)


def test_the_enterprise_may_route_by_hand_only_once_overdue(world):
    sme, _a, _b, _c, _pa, product_b, _office = world
    app = _submit(world, consent=False)
    with pytest.raises(IllegalTransition):
        applications.route(sme, app)
    successor = applications.route(sme, app, now=_after_deadline(app))
    assert successor is not None and successor.product_id == product_b.id
    assert app.status is S.ROUTED
    assert [e.to_status for e in app.events][-1] == "routed"


def test_automatic_routing_needs_the_standing_consent(world):
    sme, *_ = world
    app = _submit(world, consent=False)
    with pytest.raises(PermissionRefused):
        applications.route(sme, app, automatic=True, now=_after_deadline(app))
    assert app.status is S.SUBMITTED


def test_the_bank_cannot_route_an_application(world):
    _sme, bank_a, *_ = world
    app = _submit(world, consent=True)
    with pytest.raises(PermissionRefused):
        applications.route(bank_a, app, now=_after_deadline(app))
    db.session.rollback()


def test_a_need_routed_on_skips_every_bank_that_took_it(world, factory):
    sme, bank_a, bank_b, _c, product_a, product_b, _office = world
    bank_d = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    product_d = _product(bank_d, "丁行首贷")
    need = needs.post(sme, TERMS, confirm_sharing=True)
    first = needs.take(bank_b, need, product_b)
    applications.reject(bank_b, first, ["policy"])
    second = needs.take(bank_a, need, product_a)
    successor = applications.route(sme, second, now=_after_deadline(second))
    assert successor is not None and successor.product_id == product_d.id


def test_working_days_late_counts_chinese_working_days(world):
    app = _submit(world, consent=False)
    assert applications.working_days_late(app, app.respond_by) == 0
    # Spring Festival 2026: off 15–23 February; Saturday 14 February is a make-up working day.
    app.respond_by = dt.datetime(2026, 2, 13, 15, 59, 59, tzinfo=dt.UTC)  # Fri 23:59 Beijing
    assert applications.working_days_late(app, dt.datetime(2026, 2, 14, 4, tzinfo=dt.UTC)) == 1
    assert applications.working_days_late(app, dt.datetime(2026, 2, 23, 4, tzinfo=dt.UTC)) == 1
    assert applications.working_days_late(app, dt.datetime(2026, 2, 25, 4, tzinfo=dt.UTC)) == 3
    assert utcnow() > app.respond_by
