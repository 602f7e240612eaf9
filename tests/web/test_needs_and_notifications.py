"""Needs, taking them, notifications, the office's overdue list and offers side by side —
through the pages each side uses."""

import datetime as dt
import re
from decimal import Decimal

import sqlalchemy as sa

from app.extensions import db
from app.services import applications, needs, workdays
from models import (
    FinancingNeed,
    LoanApplication,
    LoanProduct,
    NeedStatus,
    Notification,
    OrgKind,
    User,
)
from tests.conftest import csrf_token, login
from tests.services.test_needs import TERMS, _product


def _banks_with_products(app, factory, n=2):
    banks = []
    with app.app_context():
        for i in range(n):
            account = factory.user(OrgKind.BANK)
            product = _product(db.session.get(User, account.user_id), f"产品{i}")
            db.session.commit()
            banks.append((account, product.id))
    return banks


def _client(app, account):
    client = app.test_client()
    client.set_cookie("lang", "en")
    login(client, account)
    return client


def test_enterprise_posts_a_need_and_a_bank_takes_it(app, factory):
    (bank, product_id), (other_bank, _other_product) = _banks_with_products(app, factory)
    sme = factory.enterprise()
    stranger_bank = factory.user(OrgKind.BANK)  # no product: sees nothing
    sme_client = _client(app, sme)
    form = {
        "amount_wan": "30", "term_months": "12", "purpose": "采购原材料", "max_rate": "5",
        "valid_days": "30", "csrf_token": csrf_token(sme_client, "/enterprise/needs"),
    }  # fmt: skip

    refused = sme_client.post("/enterprise/needs", data=form)
    assert refused.status_code == 422
    assert "may see your credit profile" in refused.get_data(as_text=True)
    bad = sme_client.post(
        "/enterprise/needs", data={**form, "term_months": "0", "confirm_sharing": "y"}
    )
    assert bad.status_code == 422
    assert 'data-field="term_months">The term must be between 1 and 360' in bad.get_data(
        as_text=True
    )
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(FinancingNeed)) == 0

    posted = sme_client.post("/enterprise/needs", data={**form, "confirm_sharing": "y"})
    assert posted.status_code == 302
    page = sme_client.get("/enterprise/needs").get_data(as_text=True)
    assert "2 bank(s) have a product that fits it" in page and "Open to banks" in page

    bank_client = _client(app, bank)
    listing = bank_client.get("/bank/needs").get_data(as_text=True)
    assert "采购原材料" in listing
    need_id = int(re.search(r'data-need="(\d+)"', listing).group(1))
    assert "采购原材料" not in _client(app, stranger_bank).get("/bank/needs").get_data(as_text=True)
    # The bell shows the bank one unread notification: the need was posted.
    assert 'data-testid="unread-count">1<' in listing

    taken = bank_client.post(
        f"/bank/needs/{need_id}/take",
        data={"product_id": str(product_id), "csrf_token": csrf_token(bank_client, "/bank/needs")},
    )
    assert taken.status_code == 302 and "/bank/applications/" in taken.headers["Location"]
    assert "Under review" in bank_client.get(taken.headers["Location"]).get_data(as_text=True)

    # The other bank lost the race: the need is gone from its list and taking it fails.
    other_client = _client(app, other_bank)
    assert "采购原材料" not in other_client.get("/bank/needs").get_data(as_text=True)
    late = other_client.post(
        f"/bank/needs/{need_id}/take",
        data={
            "product_id": str(_other_product),
            "csrf_token": csrf_token(other_client, "/bank/needs"),
        },
    )
    assert late.status_code == 302
    flashed = other_client.get(late.headers["Location"]).get_data(as_text=True)
    assert "Another bank took this need first" in flashed
    # Naming another bank's product is refused too.
    foreign = other_client.post(
        f"/bank/needs/{need_id}/take",
        data={"product_id": str(product_id), "csrf_token": csrf_token(other_client, "/bank/needs")},
    )  # fmt: skip
    assert foreign.status_code == 302
    with app.app_context():
        assert db.session.get(FinancingNeed, need_id).status is NeedStatus.TAKEN
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoanApplication)) == 1

    mine = sme_client.get("/enterprise/needs").get_data(as_text=True)
    assert "Taken" in mine and "Under review" in mine


def test_a_bank_without_the_enterprises_consent_gets_404_for_a_need(app, factory):
    ((bank, product_id),) = _banks_with_products(app, factory, 1)
    sme = factory.enterprise()
    with app.app_context():
        need = needs.post(db.session.get(User, sme.user_id), TERMS, confirm_sharing=True)
        db.session.commit()
        need_id = need.id
    enterprise_client = _client(app, sme)
    withdrawn = enterprise_client.post(
        f"/enterprise/needs/{need_id}/withdraw",
        data={"csrf_token": csrf_token(enterprise_client, "/enterprise/needs")},
    )
    assert withdrawn.status_code == 302
    bank_client = _client(app, bank)
    assert bank_client.post(
        f"/bank/needs/{need_id}/take",
        data={"product_id": str(product_id), "csrf_token": csrf_token(bank_client, "/bank/needs")},
    ).status_code == 404  # fmt: skip
    assert bank_client.post(
        "/bank/needs/999999/take",
        data={"product_id": str(product_id), "csrf_token": csrf_token(bank_client, "/bank/needs")},
    ).status_code == 404  # fmt: skip


def test_notifications_are_translated_opened_and_private(app, factory):
    ((bank, product_id),) = _banks_with_products(app, factory, 1)
    sme = factory.enterprise()
    with app.app_context():
        product = db.session.get(LoanProduct, product_id)
        user = db.session.get(User, sme.user_id)
        application = applications.create(user, product, Decimal("300000"), 12, "周转")
        applications.submit(user, application, confirm_sharing=True)
        applications.start_review(db.session.get(User, bank.user_id), application)
        db.session.commit()
        application_id = application.id
        own = db.session.scalars(
            sa.select(Notification.id).join(User).where(User.organization_id == sme.organization_id)
        ).all()
        bank_notes = db.session.scalars(
            sa.select(Notification.id).join(User).where(User.id == bank.user_id)
        ).all()
    assert len(own) == 1 and len(bank_notes) == 1  # each hears of the other side's move only

    client = _client(app, sme)
    page = client.get("/notifications").get_data(as_text=True)
    assert "started reviewing the application for 产品0" in page
    client.set_cookie("lang", "zh")
    assert "已开始审查「产品0」的申请" in client.get("/notifications").get_data(as_text=True)
    opened = client.get(f"/notifications/{own[0]}")
    assert opened.headers["Location"].endswith(f"/enterprise/applications/{application_id}")
    assert 'data-testid="unread-count"' not in client.get("/notifications").get_data(as_text=True)
    # Someone else's notification does not exist for this user.
    assert client.get(f"/notifications/{bank_notes[0]}").status_code == 404
    bank_client = _client(app, bank)
    assert (
        bank_client.get(f"/notifications/{bank_notes[0]}")
        .headers["Location"]
        .endswith(f"/bank/applications/{application_id}")
    )
    read_all = bank_client.post(
        "/notifications/read", data={"csrf_token": csrf_token(bank_client, "/notifications")}
    )
    assert read_all.status_code == 302
    assert app.test_client().get("/notifications").status_code == 302  # login first


def test_office_sees_overdue_applications_with_working_days_late(app, factory):
    ((_bank, product_id),) = _banks_with_products(app, factory, 1)
    sme = factory.enterprise()
    office = factory.user(OrgKind.OFFICE)
    with app.app_context():
        user = db.session.get(User, sme.user_id)
        product = db.session.get(LoanProduct, product_id)
        application = applications.create(user, product, Decimal("300000"), 12, "周转")
        applications.submit(
            user, application, confirm_sharing=True,
            now=dt.datetime.now(dt.UTC) - dt.timedelta(days=30),
        )  # fmt: skip
        db.session.commit()
        expected_late = applications.working_days_late(application)
    assert expected_late >= 10
    page = _client(app, office).get("/office/applications/overdue").get_data(as_text=True)
    assert "产品0" in page
    assert f'data-testid="late">{expected_late}<' in page
    # Only the office opens this page.
    assert _client(app, sme).get("/office/applications/overdue").status_code == 403


def test_offers_side_by_side_cheapest_first(app, factory):
    banks = _banks_with_products(app, factory, 2)
    sme = factory.enterprise()
    with app.app_context():
        user = db.session.get(User, sme.user_id)
        for (bank, product_id), (rate, fee) in zip(
            banks, [("5.5", "0"), ("4.0", "3000")], strict=True
        ):
            product = db.session.get(LoanProduct, product_id)
            application = applications.create(user, product, Decimal("300000"), 12, "周转")
            applications.submit(user, application, confirm_sharing=True)
            applications.make_offer(
                db.session.get(User, bank.user_id), application, amount=Decimal("300000"),
                rate=Decimal(rate), term_months=12, fee=Decimal(fee),
                valid_until=workdays.local_date() + dt.timedelta(days=7),
            )  # fmt: skip
        db.session.commit()
        summaries = applications.open_offers(user)
    # A 1% upfront fee on a one-year amortising loan costs about 1.8 points of APR: the
    # 4.0% offer with the fee is dearer than 5.5% without, and is listed second.
    assert [s.rate for s in summaries] == [Decimal("5.5"), Decimal("4.0")]
    assert abs(summaries[0].apr - Decimal("5.5")) < Decimal("0.001")  # cents rounding
    assert summaries[0].apr < summaries[1].apr
    # The fee and the interest, per 10,000 CNY borrowed.
    dear = summaries[1]
    assert dear.cost_per_10k == ((dear.interest + Decimal(3000)) / 30).quantize(Decimal("0.01"))
    page = _client(app, sme).get("/enterprise/applications").get_data(as_text=True)
    aprs = re.findall(r'data-testid="offer-apr">([\d.]+)%', page)
    assert len(aprs) == 2 and float(aprs[0]) < float(aprs[1])


def test_applying_with_routing_consent_is_recorded(app, factory):
    ((_bank, product_id),) = _banks_with_products(app, factory, 1)
    sme = factory.enterprise()
    client = _client(app, sme)
    page = f"/enterprise/products/{product_id}"
    sent = client.post(
        f"{page}/apply",
        data={
            "amount_wan": "30", "term_months": "12", "purpose": "周转", "confirm_sharing": "y",
            "route_on_overdue": "y", "csrf_token": csrf_token(client, page),
        },
    )  # fmt: skip
    assert sent.status_code == 302
    detail = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "It will be sent on to the next bank" in detail
    with app.app_context():
        application = db.session.scalar(sa.select(LoanApplication))
        assert application.route_on_overdue and application.route_consent_user_id == sme.user_id


def test_the_unread_badge_comes_with_the_session_lookup_and_follows_changes(app, factory):
    """The layout's unread count is counted by the session lookup every logged-in request
    makes (no statement of its own), and a change to the user's notifications within the
    request (a new one, one read, all read) makes it count again."""
    from app.services import accounts, notifications
    from tests.support.list_pages import capture

    sme = factory.enterprise()
    taken = {"bank": "某银行", "amount": "30"}
    with app.app_context():
        for _ in range(2):
            notifications.notify([sme.organization_id], "need.taken", taken)
        db.session.commit()
    client = _client(app, sme)
    with capture(app) as captured:
        page = client.get("/enterprise/").get_data(as_text=True)
    assert re.search(r'data-testid="unread-count">2<', page)
    about_notifications = [s for s, _ in captured.statements if "notification" in s]
    assert len(about_notifications) == 1 and "user_session" in about_notifications[0]

    with app.test_request_context("/"):
        token = accounts.start_session(db.session.get(User, sme.user_id), None, None)
        db.session.commit()
        user = accounts.load_session_user(token)
        assert user is not None and notifications.unread_count(user) == 2
        first = notifications.for_user(user)[0].notification
        notifications.mark_read(user, first)
        assert notifications.unread_count(user) == 1
        notifications.notify([sme.organization_id], "need.taken", taken)
        assert notifications.unread_count(user) == 2
        notifications.notify([sme.organization_id], "need.taken", taken, actor=user)  # not told
        assert notifications.unread_count(user) == 2
        notifications.mark_all_read(user)
        assert notifications.unread_count(user) == 0
        db.session.rollback()
    page = client.get("/enterprise/").get_data(as_text=True)
    assert re.search(r'data-testid="unread-count">2<', page)  # the rollback kept both


def test_overdue_applications_come_fifty_a_page_longest_overdue_first(app, factory):
    ((_bank, product_id),) = _banks_with_products(app, factory, 1)
    smes = [factory.enterprise() for _ in range(52)]  # one open application each
    office = factory.user(OrgKind.OFFICE)
    now = dt.datetime.now(dt.UTC)
    with app.app_context():
        product = db.session.get(LoanProduct, product_id)
        made = []
        for k, sme in enumerate(smes):  # submitted 60 down to 9 days ago: all overdue
            user = db.session.get(User, sme.user_id)
            application = applications.create(user, product, Decimal("300000"), 12, "周转")
            applications.submit(
                user, application, confirm_sharing=True, now=now - dt.timedelta(days=60 - k)
            )
            made.append(application.id)
        db.session.commit()
    assert _two_pages(_client(app, office), "/office/applications/overdue", "application") == (
        made[:50],
        made[50:],
    )


def test_a_banks_needs_come_fifty_a_page_oldest_first(app, factory):
    ((bank, _product_id),) = _banks_with_products(app, factory, 1)
    smes = [factory.enterprise() for _ in range(52)]
    with app.app_context():
        made = [
            needs.post(db.session.get(User, sme.user_id), TERMS, confirm_sharing=True).id
            for sme in smes
        ]
        db.session.commit()
    assert _two_pages(_client(app, bank), "/bank/needs", "need") == (made[:50], made[50:])


def _two_pages(client, path: str, attribute: str) -> tuple[list[int], list[int]]:
    """The ids (``data-<attribute>``) on the first two pages of a paged list, checking
    that the first links to the next and the second back."""
    first = client.get(path).get_data(as_text=True)
    second = client.get(f"{path}?page=2").get_data(as_text=True)
    assert 'rel="next"' in first and 'rel="prev"' in second
    ids = [[int(i) for i in re.findall(rf'data-{attribute}="(\d+)"', p)] for p in (first, second)]
    return ids[0], ids[1]
