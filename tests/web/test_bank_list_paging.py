"""A bank's loans and applications, fifty a page, read a page at a time in SQL (a bank's
lending grows with a province's: never read whole to show fifty)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from app.extensions import db
from app.services import applications, loans
from models import ApplicationStatus, Enterprise, LoanApplication, Organization, OrgKind, User
from tests.conftest import csrf_token, login
from tests.services.pool_support import make_loan
from tests.web.test_bank_access import _share
from tests.web.test_matches import _product

LOANS = 55


@pytest.fixture
def lending(app: Any, factory: Any) -> tuple[Any, list[int]]:
    """A bank with 55 disbursed loans (and their applications), one a day, newest last;
    returns its account and the loan ids newest first."""
    bank = factory.user(OrgKind.BANK)
    sme = factory.enterprise()
    with app.app_context():
        product = _product(db.session.get(User, bank.user_id), name="经营贷")
        enterprise = db.session.query(Enterprise).filter_by(organization_id=sme.organization_id)
        enterprise_id = enterprise.one().id
        made = []
        for k in range(LOANS):
            loan = make_loan(enterprise_id, product)
            # Two loans a day: the id orders the loans of one day.
            loan.disbursed_on = dt.date(2026, 1, 1) + dt.timedelta(days=k // 2)
            made.append(loan.id)
        db.session.commit()
    return bank, made[::-1]  # later days and, within a day, higher ids: the reverse order


def _rows(html: str, attribute: str) -> list[int]:
    return [int(i) for i in re.findall(rf'data-{attribute}="(\d+)"', html)]


def test_the_loans_page_shows_fifty_newest_first_and_pages_on(client, lending):
    bank, newest_first = lending
    login(client, bank)
    first = client.get("/bank/loans").get_data(as_text=True)
    second = client.get("/bank/loans?page=2").get_data(as_text=True)
    past = client.get("/bank/loans?page=9").get_data(as_text=True)
    assert _rows(first, "loan") == newest_first[:50]
    assert _rows(second, "loan") == newest_first[50:] == _rows(past, "loan")
    assert 'rel="next"' in first and "Page 1 of 2" in " ".join(first.split())
    assert 'rel="prev"' in second and 'rel="next"' not in second


def test_the_applications_page_shows_fifty_and_pages_on(client, app, lending):
    bank, _newest_first = lending
    login(client, bank)
    first = _rows(client.get("/bank/applications").get_data(as_text=True), "application")
    second = _rows(client.get("/bank/applications?page=2").get_data(as_text=True), "application")
    with app.app_context():
        everyone = [a.id for a in applications.for_bank(db.session.get(User, bank.user_id))]
    assert len(everyone) == LOANS and first + second == everyone and len(first) == 50


def test_a_page_past_the_end_is_empty_when_not_clamped(app, lending):
    """As the Open API answers: the total, and no items, past the last page."""
    bank, newest_first = lending
    with app.app_context():
        actor = db.session.get(User, bank.user_id)
        third = loans.page_for_bank(actor, 3, per_page=20)
        fourth = loans.page_for_bank(actor, 4, per_page=20, clamp=False)
    assert [loan.id for loan in third.items] == newest_first[40:]
    assert (third.total, third.page, third.pages) == (LOANS, 3, 3)
    assert fourth.items == [] and (fourth.total, fourth.page) == (LOANS, 4)


def test_applications_awaiting_an_answer_come_first_soonest_deadline_first(client, app, lending):
    """Fifty-five disbursed applications with old deadlines, and three awaiting the bank's
    answer: those three lead page 1, soonest deadline first; then the rest, newest first."""
    bank, _newest_first = lending
    with app.app_context():
        decided = [
            a.id
            for a in db.session.query(LoanApplication).filter_by(bank_org_id=bank.organization_id)
        ]
        for a in db.session.query(LoanApplication).filter_by(bank_org_id=bank.organization_id):
            a.respond_by = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # long answered
        first = db.session.get(LoanApplication, decided[0])
        enterprise = db.session.get(Enterprise, first.enterprise_id)
        owner = db.session.query(User).filter_by(organization_id=enterprise.organization_id)
        bank_org = db.session.get(Organization, bank.organization_id)
        _share(owner.first(), enterprise, bank_org)  # so the bank sees its open requests
        waiting = []
        for days, status in ((9, ApplicationStatus.SUBMITTED), (2, ApplicationStatus.UNDER_REVIEW),
                             (5, ApplicationStatus.SUBMITTED)):  # fmt: skip
            fresh = LoanApplication(
                enterprise_id=first.enterprise_id, product_id=first.product_id,
                bank_org_id=first.bank_org_id, amount=first.amount, term_months=12,
                purpose="周转", status=status,
                respond_by=dt.datetime(2026, 12, 1, tzinfo=dt.UTC) + dt.timedelta(days=days),
            )  # fmt: skip
            db.session.add(fresh)
            db.session.flush()
            waiting.append((days, fresh.id))
        db.session.commit()
    login(client, bank)
    page = _rows(client.get("/bank/applications").get_data(as_text=True), "application")
    assert page[:3] == [i for _days, i in sorted(waiting)]
    assert page[3:] == sorted(decided, reverse=True)[:47]


def test_recording_a_repayment_returns_to_the_page_it_was_recorded_on(client, lending):
    bank, newest_first = lending
    login(client, bank)
    second = client.get("/bank/loans?page=2").get_data(as_text=True)
    action = re.search(rf'action="([^"]*/loans/{newest_first[-1]}/repayment[^"]*)"', second)
    assert action, "the loan's repayment form on page 2"
    response = client.post(
        action.group(1).replace("&amp;", "&"),
        data={
            "amount": "1000",
            "occurred_on": "2026-06-01",
            "csrf_token": csrf_token(client, "/bank/loans"),
        },
    )
    assert response.status_code == 302 and response.location.endswith("/bank/loans?page=2")
    shown = client.get(response.location).get_data(as_text=True)
    assert "99,000.00" in shown and newest_first[-1] in _rows(shown, "loan")
