"""The pool claim lists (the office's, the bank's) load each claim's bank and enterprise
with the claims, not one by one, and show 50 a page; the bank's claimable loans are read in
one statement."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.services import loans
from app.services import pool as pool_service
from models import Enterprise, User
from tests.conftest import Factory, login
from tests.services.pool_support import TODAY, make_loan, make_pool, make_world
from tests.support.list_pages import capture


def _claims(world: Any, pool: Any, factory: Factory, count: int) -> None:
    """``count`` claims, each on a loan to an enterprise of its own."""
    db.session.commit()  # (the factory writes from a session of its own)
    users = [factory.enterprise().user_id for _ in range(count)]
    for user_id in users:
        sme = db.session.get(User, user_id)
        enterprise = db.session.scalar(
            sa.select(Enterprise).where(Enterprise.organization_id == sme.organization_id)
        )
        loan = make_loan(enterprise.id, world.product, Decimal("200000"))
        assert pool_service.reserve(None, loan, pool=pool).coverage is not None
        loans.record_default(world.bank, loan, TODAY)
        pool_service.file_claim(world.bank, loan, "催收记录与诉讼材料见附件。")
    db.session.commit()


def _statements(app: Flask, client: Any, path: str) -> tuple[int, str]:
    client.get(path)  # warm
    with capture(app) as found:
        page = client.get(path)
    assert page.status_code == 200, path
    return len(found.statements), page.get_data(as_text=True)


def test_claim_lists_load_their_rows_with_the_claims_and_page_by_50(
    app: Flask, factory: Factory
) -> None:
    with app.app_context():
        world = make_world(factory)
        pool = make_pool(Decimal("50000000"))
        accounts = {
            "office": _account(world.office),
            "bank": _account(world.bank),
        }
        _claims(world, pool, factory, 2)
        # a defaulted covered loan not claimed yet
        loose = make_loan(world.enterprise.id, world.product, Decimal("100000"))
        pool_service.reserve(None, loose, pool=pool)
        loans.record_default(world.bank, loose, TODAY)
        db.session.commit()
        loose_id = loose.id
    office, bank = app.test_client(), app.test_client()
    login(office, accounts["office"])
    login(bank, accounts["bank"])
    paths = ((office, "/office/pool/claims?status=all"), (bank, "/bank/claims"))
    few = {path: _statements(app, client, path) for client, path in paths}
    with app.app_context():
        world = make_world_again(world)
        _claims(world, db.session.merge(pool), factory, 51)
    many = {path: _statements(app, client, path) for client, path in paths}
    for path in few:
        assert many[path][0] == few[path][0], (path, few[path][0], many[path][0])
        html = many[path][1]
        assert html.count("data-claim=") == 50 and 'rel="next"' in html, path
    assert few["/bank/claims"][1].count("data-loan=") == 1  # the claimable loan
    second = office.get("/office/pool/claims?status=all&page=2").get_data(as_text=True)
    assert second.count("data-claim=") == 3 and 'rel="prev"' in second
    assert "status=all" in second.split('rel="prev"')[0].rsplit("<a", 1)[1]  # stays on "all"
    with app.app_context():
        bank_user = db.session.get(User, accounts["bank"].user_id)
        claimable = pool_service.claimable_loans(bank_user)
        assert [loan.id for loan, _ in claimable] == [loose_id]


def make_world_again(world: Any) -> Any:
    """The same world's objects in the current session."""
    for name in ("office", "bank", "other_bank", "sme", "enterprise", "product"):
        setattr(world, name, db.session.merge(getattr(world, name)))
    return world


def _account(user: User) -> Any:
    from tests.conftest import TEST_PASSWORD, Account

    return Account(user.email, TEST_PASSWORD, user.id, user.organization_id)
