"""The office's objection queue reads each objection's enterprise and the record it names
with the list (a statement per table), not one by one: as many statements for many open
objections as for few."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from app.services import objections
from models import OrgKind, Role, User, db
from models.records import TaxRecord
from tests.conftest import Factory, login
from tests.services.test_profiles_support import add_records, enterprise_by_user, grant_collection
from tests.support.list_pages import capture


def _objections(app: Flask, factory: Factory, count: int) -> None:
    """``count`` enterprises with records, each objecting to one of its tax records."""
    accounts = [factory.enterprise() for _ in range(count)]
    with app.app_context():
        for account in accounts:
            grant_collection(account.user_id, ("tax",))
            enterprise = enterprise_by_user(account.user_id)
            add_records(enterprise, arrears_months=1)
            db.session.flush()
            tax = db.session.scalars(
                sa.select(TaxRecord).where(TaxRecord.enterprise_id == enterprise.id)
            ).first()
            user = db.session.get(User, account.user_id)
            objections.file(user, text="金额有误", table="tax", record_id=tax.id)
        db.session.commit()


def _statements(app: Flask, client) -> tuple[int, str]:
    client.get("/office/objections")  # warm
    with capture(app) as found:
        page = client.get("/office/objections")
    assert page.status_code == 200
    return len(found.statements), page.get_data(as_text=True)


def test_the_queue_sends_as_many_statements_for_many_objections_as_for_few(
    app: Flask, factory: Factory
) -> None:
    office = app.test_client()
    login(office, factory.user(OrgKind.OFFICE, Role.OFFICER))
    _objections(app, factory, 2)
    few, few_html = _statements(app, office)
    _objections(app, factory, 5)
    many, many_html = _statements(app, office)
    assert few_html.count("测试企业") < many_html.count("测试企业")  # the rows are there
    assert many == few, (few, many)
