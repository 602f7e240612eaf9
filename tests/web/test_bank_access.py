"""A bank sees only enterprises that authorized it: in lists, counts and profile pages."""

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from markupsafe import Markup

from app.extensions import db
from app.services import audit, bank_views, matching, objections, profiles
from app.services import authorization as authz
from app.services.authorization import GrantRequest
from models import (
    AuditEvent,
    Authorization,
    AuthorizationKind,
    CreditProfile,
    Enterprise,
    Organization,
    OrgKind,
    User,
)
from tests.conftest import login
from tests.services.test_profiles_support import (
    add_records,
    approved_version_id_fixture,  # noqa: F401  (fixture)
    trained_model_dir_fixture,  # noqa: F401  (fixture)
)
from tests.support.list_pages import capture
from tests.web.test_matches import _product


def _enterprise(factory):
    account = factory.enterprise()
    user = db.session.get(User, account.user_id)
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == account.organization_id)
    )
    return user, enterprise


def _share(user, enterprise, bank=None, records=False, now=None):
    grant = authz.grant(
        user,
        enterprise,
        GrantRequest(
            kind=AuthorizationKind.SHARING,
            scopes=("tax", "social_insurance"),
            grantee_org_id=bank.id if bank else None,
            all_banks=bank is None,
            include_records=records,
        ),
        now=now,
    )
    db.session.commit()
    return grant


@pytest.fixture
def matrix(app, factory):
    """Bank A's user and enterprises in every authorization situation."""
    bank_a = factory.user(OrgKind.BANK)
    with app.app_context():
        a = db.session.get(Organization, bank_a.organization_id)
        b = db.session.get(Organization, factory.organization(OrgKind.BANK))
        names = {}
        for label in ("mine", "all_banks", "other_bank", "never", "revoked", "expired"):
            user, enterprise = _enterprise(factory)
            names[label] = enterprise.id
            if label == "mine":
                _share(user, enterprise, a, records=True)
            elif label == "all_banks":
                _share(user, enterprise)
            elif label == "other_bank":
                _share(user, enterprise, b)
            elif label == "revoked":
                grant = _share(user, enterprise, a)
                authz.revoke(user, grant)
                db.session.commit()
            elif label == "expired":
                _share(user, enterprise, a, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=400))
    return bank_a, names


def test_prospect_list_shows_exactly_the_authorized(client, matrix):
    bank, ids = matrix
    login(client, bank)
    html = client.get("/bank/prospects").get_data(as_text=True)
    shown = {eid for label, eid in ids.items() if f'data-enterprise="{eid}"' in html}
    assert shown == {ids["mine"], ids["all_banks"]}
    # each row's link opens that enterprise's profile
    for eid in shown:
        row = re.search(rf'<tr data-enterprise="{eid}"><td><a href="([^"]+)">([^<]+)</a>', html)
        assert row and row.group(1) == f"/bank/enterprises/{eid}"
        profile = client.get(row.group(1))
        assert profile.status_code == 200
        assert f'data-testid="enterprise-name">{row.group(2)}<' in profile.get_data(as_text=True)


@pytest.mark.parametrize(
    "label,status",
    [
        ("mine", 200),
        ("all_banks", 200),
        ("other_bank", 404),
        ("never", 404),
        ("revoked", 404),
        ("expired", 404),
    ],
)
def test_profile_page_only_with_a_live_grant(client, app, matrix, label, status):
    bank, ids = matrix
    login(client, bank)
    assert client.get(f"/bank/enterprises/{ids[label]}").status_code == status
    with app.app_context():
        views = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "profile.view", AuditEvent.enterprise_id == ids[label])
        )
    assert views == (1 if status == 200 else 0)


def test_unknown_enterprise_looks_the_same_as_an_unauthorized_one(client, matrix):
    bank, ids = matrix
    login(client, bank)
    unknown = client.get("/bank/enterprises/999999")
    refused = client.get(f"/bank/enterprises/{ids['never']}")
    assert unknown.status_code == refused.status_code == 404

    def error_box(response):
        return re.search(
            r'<div class="error-box".*?</div>', response.get_data(as_text=True), re.S
        ).group(0)

    assert error_box(unknown) == error_box(refused)


def test_records_only_where_shared_and_the_view_is_counted_and_logged(client, app, matrix):
    bank, ids = matrix
    login(client, bank)
    html = client.get(f"/bank/enterprises/{ids['mine']}").get_data(as_text=True)
    assert 'data-testid="records-tax"' in html and 'data-testid="records-social_insurance"' in html
    assert 'data-testid="records-utilities"' not in html
    html = client.get(f"/bank/enterprises/{ids['all_banks']}").get_data(as_text=True)
    assert 'data-testid="records-tax"' not in html
    with app.app_context():
        grant = db.session.scalar(
            sa.select(Authorization).where(Authorization.enterprise_id == ids["mine"])
        )
        assert grant.use_count >= 1 and grant.last_used_at is not None
        actions = set(
            db.session.scalars(
                sa.select(AuditEvent.action).where(AuditEvent.enterprise_id == ids["mine"])
            )
        )
        assert {"profile.view", "records.view"} <= actions


def test_revocation_bites_on_the_very_next_request(client, app, matrix):
    bank, ids = matrix
    login(client, bank)
    assert client.get(f"/bank/enterprises/{ids['mine']}").status_code == 200
    with app.app_context():
        grant = db.session.scalar(
            sa.select(Authorization).where(Authorization.enterprise_id == ids["mine"])
        )
        owner = db.session.get(User, grant.granted_by_user_id)
        authz.revoke(owner, grant)
        db.session.commit()
    assert client.get(f"/bank/enterprises/{ids['mine']}").status_code == 404
    html = client.get("/bank/prospects").get_data(as_text=True)
    assert f'data-enterprise="{ids["mine"]}"' not in html


def test_the_enterprise_sees_which_bank_viewed_it(client, app, matrix, factory):
    bank, ids = matrix
    login(client, bank)
    client.get(f"/bank/enterprises/{ids['mine']}")
    with app.app_context():
        grant = db.session.scalar(
            sa.select(Authorization).where(Authorization.enterprise_id == ids["mine"])
        )
        owner = db.session.get(User, grant.granted_by_user_id)
        bank_name = db.session.get(Organization, bank.organization_id).name
    sme = app.test_client()
    sme.set_cookie("lang", "en")
    from tests.conftest import TEST_PASSWORD, Account

    login(sme, Account(owner.email, TEST_PASSWORD, owner.id, owner.organization_id))
    log = sme.get("/enterprise/data-use").get_data(as_text=True)
    assert bank_name in log and "Viewed your credit profile" in log


def test_one_view_counts_each_use_and_appends_its_events_in_order(client, app, matrix):
    bank, ids = matrix
    login(client, bank)
    with app.app_context():
        last_seq = db.session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0
    html = client.get(f"/bank/enterprises/{ids['mine']}").get_data(as_text=True)
    assert 'data-testid="records-tax"' in html
    with app.app_context():
        grant = db.session.scalar(
            sa.select(Authorization).where(Authorization.enterprise_id == ids["mine"])
        )
        assert grant.use_count == 3  # the profile, the tax and the social-insurance records
        events = db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.scope)
            .where(AuditEvent.seq > last_seq)
            .order_by(AuditEvent.seq)
        ).all()
        assert [tuple(e) for e in events] == [
            ("profile.view", None),
            ("records.view", "tax"),
            ("records.view", "social_insurance"),
        ]
        assert audit.verify().ok


def test_the_profile_page_sends_as_many_statements_for_many_records_as_for_none(
    client, app, matrix
):
    """No N+1: the page renders from what the view read, before the view's writes and its
    commit, so rendering 36 records (and two public-credit ones) does not reload them one by
    one; and it is one transaction (no second BEGIN after the commit for the template's own
    reads). A shared scope's records are read once, and only when there are some."""
    bank, ids = matrix
    login(client, bank)
    path = f"/bank/enterprises/{ids['mine']}"
    client.get(path)
    with capture(app) as before:
        empty = client.get(path).get_data(as_text=True)
    with app.app_context():
        add_records(db.session.get(Enterprise, ids["mine"]))
        db.session.commit()
    with capture(app) as after:
        full = client.get(path).get_data(as_text=True)
    tax_rows = re.search(r'data-testid="records-tax".*?</article>', full, re.S).group(0)
    assert "No records received yet" in empty and tax_rows.count("<tr>") >= 18
    # Three statements more, and only three: the records of the two shared scopes and the
    # public-credit records, each read once there are some (the enterprise's SELECT says
    # whether there are). Electricity has records too, but is not shared: never read.
    assert len(after.statements) == len(before.statements) + 3 <= 20

    def reads(captured: Any, table: str) -> int:
        return sum(s.lstrip().startswith(f"SELECT {table}.") for s, _ in captured.statements)

    tables = ("tax", "social_insurance", "utilities", "provident_fund", "public_credit")
    assert [reads(before, t) for t in tables] == [0, 0, 0, 0, 0]
    assert [reads(after, t) for t in tables] == [1, 1, 0, 0, 1]
    # The audit append last (its chain's end, then its INSERT, an executemany the capture
    # leaves out): nothing read after.
    assert re.search(r"audit_event|audit_chain_end", after.statements[-1][0])


def test_a_yes_no_record_column_reads_in_words(client, app, matrix):
    """ "Filed late" shows 是 / 否 (Yes / No in English), never Python's True / False; the
    headings are in the page's language too, whichever was asked for first."""
    bank, ids = matrix
    login(client, bank)
    with app.app_context():
        add_records(db.session.get(Enterprise, ids["mine"]))  # filed late in one month only
        db.session.commit()
    path = f"/bank/enterprises/{ids['mine']}"
    for language, yes, no, heading in (
        ("zh", "是", "否", "逾期申报"),
        ("en", "Yes", "No", "Filed late"),
        ("zh", "是", "否", "逾期申报"),
    ):
        client.set_cookie("lang", language)
        html = client.get(path).get_data(as_text=True)
        tax = re.search(r'data-testid="records-tax".*?</article>', html, re.S).group(0)
        assert re.findall(r"<th>([^<]*)</th>", tax)[4] == heading
        late = [re.findall(r"<td>([^<]*)</td>", row)[4] for row in tax.split("<tr>")[2:]]
        assert late.count(yes) == 1 and late.count(no) == len(late) - 1 >= 17, late


def test_record_rows_escape_text_and_mark_only_disputed_records():
    """The records table's rows are built in one pass: text escaped, numbers as they print,
    yes/no in the words given, the mark on the disputed record only."""
    from types import SimpleNamespace

    def tax(period: str, late: bool) -> SimpleNamespace:
        return SimpleNamespace(
            uscc="91350100M000100Y43", period=period, tax_type="<b>VAT</b>",
            amount_paid=Decimal("13000.50"), declared_sales=Decimal("100000.00"),
            late_filing=late, arrears=Decimal(0), version=2,
        )  # fmt: skip

    rows = [tax("2026-05", True), tax("2026-04", False)]
    disputed = objections.Marks(records={("tax", objections.record_key("tax", rows[1])): 7})
    view = bank_views.ProfileView(None, None, {"tax": rows}, [], disputed)
    html = view.table_rows("tax", {True: "是", False: "否"}, Markup("<i>异议中</i>"))
    assert str(html) == (
        "<tr><td>2026-05</td><td>&lt;b&gt;VAT&lt;/b&gt;</td><td>13000.50</td>"
        "<td>100000.00</td><td>是</td><td>0</td><td>2</td><td></td></tr>"
        "<tr><td>2026-04</td><td>&lt;b&gt;VAT&lt;/b&gt;</td><td>13000.50</td>"
        "<td>100000.00</td><td>否</td><td>0</td><td>2</td><td>"
        '<span class="status status-pending" data-testid="under-objection"><i>异议中</i>'
        "</span></td></tr>"
    )


def test_prospect_rows_escape_names_and_link_each_profile():
    """The prospect list's rows are built in one pass: names escaped, each linked to its
    profile, sizes in words, the products or "none yet"."""
    from types import SimpleNamespace

    def row(eid: int, name: str, size: str) -> SimpleNamespace:
        return SimpleNamespace(
            id=eid, name=name, uscc="91350100M000100Y43", size_class=SimpleNamespace(value=size)
        )

    matched = bank_views.Prospect(row(7, "甲&乙 <公司>", "small"), [object()], "税易贷、社保贷")
    unmatched = bank_views.Prospect(row(8, "丙", "micro"))
    html = bank_views.prospect_rows(
        [matched, unmatched], lambda i: f"/bank/enterprises/{i}",
        {"small": "小型", "micro": "微型"}, "暂无",
    )  # fmt: skip
    assert str(html) == (
        '<tr data-enterprise="7"><td><a href="/bank/enterprises/7">甲&amp;乙 &lt;公司&gt;</a>'
        "</td><td><code>91350100M000100Y43</code></td><td>小型</td><td>税易贷、社保贷</td></tr>\n"
        '<tr data-enterprise="8"><td><a href="/bank/enterprises/8">丙</a></td>'
        "<td><code>91350100M000100Y43</code></td><td>微型</td><td><small>暂无</small></td></tr>"
    )


def test_a_view_that_could_not_be_logged_is_never_shown(client, app, matrix, monkeypatch):
    """The page is rendered before the view's use count and audit events are written; when
    writing them fails the page is not sent and nothing of the view is kept."""
    bank, ids = matrix
    login(client, bank)
    rendered = []

    def failing(entries, now=None):
        rendered.append(True)
        raise RuntimeError("the audit trail is unavailable")

    monkeypatch.setattr(bank_views.audit, "record_many", failing)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get(f"/bank/enterprises/{ids['mine']}")
    html = response.get_data(as_text=True)
    assert rendered and response.status_code == 500
    assert 'data-testid="records-tax"' not in html and 'data-testid="profile"' not in html
    with app.app_context():
        grant = db.session.scalar(
            sa.select(Authorization).where(Authorization.enterprise_id == ids["mine"])
        )
        assert grant.use_count == 0 and grant.last_used_at is None


def test_prospect_matching_reads_the_same_facts_as_batch_matching(
    client, app, matrix, approved_version_id
):
    """The prospect list's one SELECT (live sharing grants as a subquery, collection scopes
    and the latest profile's facts as columns) gives each prospect the facts
    ``matching.facts_of`` reads with its own queries: two collection grants' scopes
    combined, a paused and a revoked one left out, a newer profile preferred."""
    bank, ids = matrix
    with app.app_context():
        mine = db.session.get(Enterprise, ids["mine"])
        other = db.session.get(Enterprise, ids["all_banks"])

        def owner(enterprise):
            return db.session.scalar(
                sa.select(User).where(User.organization_id == enterprise.organization_id)
            )

        for scopes in (("tax",), ("utilities", "provident_fund")):
            authz.grant(
                owner(mine), mine, GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=scopes)
            )
        paused = authz.grant(
            owner(other), other, GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=("tax",))
        )
        authz.set_paused(owner(other), paused, True)
        revoked = authz.grant(
            owner(other),
            other,
            GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=("social_insurance",)),
        )
        authz.revoke(owner(other), revoked)
        add_records(mine)
        for day in (2, 1):  # two snapshots: the newer one (the larger id) counts
            profiles.compute_profile(mine, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=day))
        db.session.commit()
        listed = bank_views.prospects(db.session.get(User, bank.user_id))
        assert {p.enterprise.id for p in listed} == {ids["mine"], ids["all_banks"]}
        now = dt.datetime.now(dt.UTC)
        expected = matching.facts_of(
            db.session.scalars(sa.select(Enterprise).where(Enterprise.id.in_(ids.values()))).all(),
            now,
        )
        rows = sorted((p.enterprise for p in listed), key=lambda row: row.id)
        got = bank_views.prospect_facts(rows, now)
        index = {int(i): k for k, i in enumerate(expected.ids)}
        for k, enterprise_id in enumerate(got.ids):
            e = index[int(enterprise_id)]
            for name in ("scopes_mask", "size_class", "public_class"):
                assert getattr(got, name)[k] == getattr(expected, name)[e], name
            assert got.industry[k] == expected.industry[e]
            assert got.region[k] == expected.region[e]
            for name in (
                "grade_rank",
                "annual_sales",
                "tax_months",
                "social_months",
                "years_operating",
            ):
                a, b = getattr(got, name)[k], getattr(expected, name)[e]
                assert (a == b) or (a != a and b != b), name  # equal, or both unknown (NaN)
        by_id = {row.id: row for row in rows}
        assert matching.scopes_mask(by_id[ids["mine"]].collection_scopes) == matching.scopes_mask(
            "tax,utilities,provident_fund"
        )
        assert by_id[ids["all_banks"]].collection_scopes is None
        newest = db.session.scalar(
            sa.select(sa.func.max(CreditProfile.id)).where(CreditProfile.enterprise_id == mine.id)
        )
        assert by_id[ids["mine"]].profile_id == newest


def test_prospects_come_a_page_at_a_time_matched_in_chunks(client, app, matrix, monkeypatch):
    """Chunks of one enterprise and pages of one: every prospect is on exactly one page with
    its own matches, the one qualifying comes first, the counts cover them all, and a page
    past the end shows the last."""
    monkeypatch.setattr(bank_views, "PROSPECT_CHUNK", 1)
    monkeypatch.setattr(bank_views, "PROSPECTS_PER_PAGE", 1)
    bank, ids = matrix
    with app.app_context():
        _product(db.session.get(User, bank.user_id), name="税易贷", required_scopes=("tax",))
        mine = db.session.get(Enterprise, ids["mine"])
        owner = db.session.scalar(
            sa.select(User).where(User.organization_id == mine.organization_id)
        )
        authz.grant(owner, mine, GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=("tax",)))
        db.session.commit()
    client.set_cookie("lang", "en")
    login(client, bank)
    first = client.get("/bank/prospects?page=1").get_data(as_text=True)
    second = client.get("/bank/prospects?page=2").get_data(as_text=True)
    for page, html in ((1, first), (2, second)):
        assert "2 enterprises have authorized your bank; 1 qualify" in " ".join(html.split())
        assert f"Page {page} of 2" in html
    row = re.search(rf'data-enterprise="{ids["mine"]}".*?</tr>', first, re.S)
    assert row and "税易贷" in row.group(0)
    row = re.search(rf'data-enterprise="{ids["all_banks"]}".*?</tr>', second, re.S)
    assert row and "税易贷" not in row.group(0) and "none yet" in row.group(0)
    last = client.get("/bank/prospects?page=9").get_data(as_text=True)
    assert "Page 2 of 2" in last and f'data-enterprise="{ids["all_banks"]}"' in last
    client.set_cookie("lang", "zh")
    chinese = client.get("/bank/prospects").get_data(as_text=True)
    assert "共有 2 家企业向贵行授权；其中 1 家符合贵行至少一款产品的条件。" in chinese
