"""Disbursement makes a loan; repayments, default; post-loan monitoring lives with the loan."""

import datetime as dt
from decimal import Decimal

import pytest

from app.extensions import db
from app.services import applications, loans, workdays
from app.services import authorization as authz
from app.services.accounts import AccountError
from app.services.applications import IllegalTransition
from app.services.authorization import Action, GrantRequest
from models import ApplicationStatus, AuthorizationKind, Enterprise, Organization, Purpose
from models.loan import LoanStatus
from tests.services.test_applications import submitted
from tests.services.test_applications import world as world

TODAY = workdays.local_date()


def accepted(world):
    sme, bank, _other, _product = world
    app = submitted(world)
    applications.make_offer(
        bank, app, amount=Decimal("200000"), rate=Decimal("4.5"), term_months=12,
        fee=Decimal(0), valid_until=TODAY + dt.timedelta(days=5),
    )  # fmt: skip
    applications.accept(sme, app)
    return app


def test_disbursement_creates_the_loan_from_the_accepted_offer(world):
    _sme, bank, _other, _product = world
    app = accepted(world)
    loan = loans.disburse(bank, app, TODAY)
    assert app.status is ApplicationStatus.DISBURSED
    assert (loan.principal, loan.rate, loan.term_months) == (Decimal("200000"), Decimal("4.5"), 12)
    assert loan.outstanding == loan.principal and loan.status is LoanStatus.ACTIVE
    assert loan.first_loan is True
    assert (loan.maturity_on.year * 12 + loan.maturity_on.month) - (
        TODAY.year * 12 + TODAY.month
    ) == 12


def test_only_accepted_offers_are_disbursed_and_not_in_the_future(world):
    _sme, bank, _other, _product = world
    app = submitted(world)
    with pytest.raises(IllegalTransition):
        loans.disburse(bank, app, TODAY)
    applications.withdraw(world[0], app)  # one open application per product
    app = accepted(world)
    with pytest.raises(AccountError, match="future"):
        loans.disburse(bank, app, TODAY + dt.timedelta(days=1))


def test_repayments_down_to_zero_mark_the_loan_repaid_and_overpaying_is_refused(world):
    _sme, bank, _other, _product = world
    loan = loans.disburse(bank, accepted(world), TODAY)
    with pytest.raises(AccountError, match="at most the outstanding"):
        loans.record_repayment(bank, loan, Decimal("200000.01"), TODAY)
    loans.record_repayment(bank, loan, Decimal("150000"), TODAY)
    assert loan.outstanding == Decimal("50000") and loan.status is LoanStatus.ACTIVE
    loans.record_repayment(bank, loan, Decimal("50000"), TODAY)
    assert (
        loan.status is LoanStatus.REPAID
        and [e.kind.value for e in loan.events] == ["repayment"] * 2
    )


def test_default_is_an_outcome_label(world):
    _sme, bank, _other, _product = world
    loan = loans.disburse(bank, accepted(world), TODAY)
    loans.record_overdue(bank, loan, TODAY, 31)
    loans.record_default(bank, loan, TODAY)
    loans.record_recovery(bank, loan, Decimal("10000"), TODAY)
    assert loan.status is LoanStatus.DEFAULTED
    labels = loans.outcome_labels()
    assert labels["defaulted"].tolist() == [1]


def test_post_loan_monitoring_is_valid_only_while_the_loan_is_active(world):
    sme, bank, _other, _product = world
    enterprise = db.session.get(Enterprise, accepted(world).enterprise_id)
    bank_org = db.session.get(Organization, bank.organization_id)
    request = GrantRequest(
        kind=AuthorizationKind.SHARING, scopes=("tax",), grantee_org_id=bank_org.id,
        purpose=Purpose.POST_LOAN_MONITORING,
    )  # fmt: skip
    with pytest.raises(AccountError) as err:
        authz.grant(sme, enterprise, request)  # no loan yet
    assert err.value.field == "purpose"
    app = db.session.scalar(db.select(applications.LoanApplication))
    loan = loans.disburse(bank, app, TODAY)
    monitoring = authz.grant(sme, enterprise, request)
    # The application's own financing grant is revoked: monitoring alone must carry the view.
    financing = db.session.get(authz.Authorization, app.sharing_authorization_id)
    authz.revoke(sme, financing)
    decision = authz.decide(bank_org, Action.VIEW_PROFILE, enterprise)
    assert decision.allowed and decision.authorization_id == monitoring.id
    assert enterprise.id in authz.shared_with_bank(bank_org)
    loans.record_repayment(bank, loan, loan.outstanding, TODAY)  # repaid: monitoring ends
    assert loan.status is LoanStatus.REPAID, (loan.status, loan.outstanding)
    assert not loans.has_active_loan(bank_org.id, enterprise.id)
    decision = authz.decide(bank_org, Action.VIEW_PROFILE, enterprise)
    assert not decision.allowed and decision.reason == "no_active_loan"
    assert enterprise.id not in authz.shared_with_bank(bank_org)
