"""A bank's loans and applications, fifty a page, read a page at a time in SQL (a bank's
lending grows with a province's: never read whole to show fifty)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from app.extensions import db
from app.services import applications, loans
from models import Enterprise, OrgKind, User
from tests.conftest import login
from tests.services.pool_support import make_loan
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
    return bank, sorted(made, key=lambda i: (made.index(i) // 2, i), reverse=True)


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
