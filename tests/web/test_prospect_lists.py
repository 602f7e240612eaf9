"""The prospect list a web process keeps between requests (``bank_views.prospect_page``):
taken while nothing it was matched from has changed, matched again as soon as anything has
(a grant, an enterprise, a profile, a product), when time alone changes it (a grant ends, a
new local day), and never shown past a live grant."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import authorization as authz
from app.services import bank_views, products
from app.services.authorization import GrantRequest
from app.services.workdays import SHANGHAI, local_date
from models import (
    MATCH_INPUTS,
    Authorization,
    AuthorizationKind,
    CreditProfile,
    Enterprise,
    LoanProduct,
    MatchEpoch,
    Organization,
    OrgKind,
    SizeClass,
    User,
)
from tests.conftest import login
from tests.web.test_bank_access import _enterprise, _share
from tests.web.test_matches import _product


@pytest.fixture
def prospects(app, factory):
    """A bank's user and two enterprises sharing with it (one with this bank, one with
    every bank); the kept lists start empty."""
    bank = factory.user(OrgKind.BANK)
    with app.app_context():
        org = db.session.get(Organization, bank.organization_id)
        ids = []
        for one_bank in (True, False):
            user, enterprise = _enterprise(factory)
            _share(user, enterprise, org if one_bank else None)
            ids.append(enterprise.id)
        app.extensions.pop(bank_views.KEPT_LISTS, None)
    return bank, ids


def _page(bank, page=1, now=None):
    """(the page's enterprise ids, their product names), the counts, and the lists built."""
    shown = bank_views.prospect_page(db.session.get(User, bank.user_id), page, now)
    rows = {p.enterprise.id: p.product_names for p in shown.prospects}
    return rows, (shown.total, shown.qualified), bank_views.kept_prospect_lists().built


def _owner(enterprise_id):
    enterprise = db.session.get(Enterprise, enterprise_id)
    user = db.session.scalar(
        sa.select(User).where(User.organization_id == enterprise.organization_id)
    )
    return user, enterprise


def test_a_kept_list_serves_until_something_it_read_changes(app, prospects):
    bank, (mine, everyone) = prospects
    with app.app_context():
        first = _page(bank)
        again = _page(bank)
        assert first == again and first[0] == {mine: "", everyone: ""}
        assert again[2] == 1  # matched once, then taken from the kept list
        _product(db.session.get(User, bank.user_id), name="税易贷", size_classes=("small",))
        db.session.commit()
        rows, counts, built = _page(bank)
    assert rows == {mine: "税易贷", everyone: "税易贷"} and counts == (2, 2) and built == 2


def _revoke(ids):
    user, enterprise = _owner(ids[0])
    grant = db.session.scalar(
        sa.select(Authorization).where(Authorization.enterprise_id == enterprise.id)
    )
    authz.revoke(user, grant)


def _pause(ids):
    user, enterprise = _owner(ids[0])
    grant = db.session.scalar(
        sa.select(Authorization).where(Authorization.enterprise_id == enterprise.id)
    )
    authz.set_paused(user, grant, True)


def _share_another(ids):
    user, enterprise = _owner(ids[1])
    authz.grant(user, enterprise, GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=("tax",)))


def _rename(ids):
    db.session.get(Enterprise, ids[0]).name = "改名后有限公司"


def _resize(ids):
    db.session.get(Enterprise, ids[0]).size_class = SizeClass.MEDIUM


def _new_profile(ids):
    db.session.add(
        CreditProfile(
            enterprise_id=ids[1], as_of=dt.date(2026, 11, 30),
            public_credit_class="A", annual_sales=Decimal("9000000"), tax_months=24,
            social_months=24, content_hash="0" * 64,
        )
    )  # fmt: skip


def _retire(ids):
    product = db.session.scalar(sa.select(LoanProduct).where(LoanProduct.name == "小微贷"))
    bank_user = db.session.scalar(
        sa.select(User).where(User.organization_id == product.bank_org_id)
    )
    products.retire(bank_user, product)


@pytest.mark.parametrize(
    "change,expect",
    [
        (_revoke, lambda ids: {ids[1]: "小微贷"}),  # consent: gone on the next request
        (_pause, lambda ids: {ids[1]: "小微贷"}),
        (_share_another, lambda ids: {ids[0]: "小微贷", ids[1]: "小微贷、税易贷"}),
        (_rename, lambda ids: {ids[0]: "小微贷", ids[1]: "小微贷"}),
        (_resize, lambda ids: {ids[0]: "", ids[1]: "小微贷"}),
        (_new_profile, lambda ids: {ids[0]: "小微贷", ids[1]: "小微贷、销售贷"}),
        (_retire, lambda ids: {ids[0]: "", ids[1]: ""}),  # the other two not matched
    ],
)
def test_any_change_to_what_matching_reads_is_shown_on_the_next_request(
    app, prospects, change, expect
):
    bank, ids = prospects
    with app.app_context():
        bank_user = db.session.get(User, bank.user_id)
        _product(bank_user, name="小微贷", size_classes=("micro", "small"))
        _product(bank_user, name="税易贷", required_scopes=("tax",))
        _product(bank_user, name="销售贷", min_annual_sales=Decimal("8000000"))
        db.session.commit()
        before = _page(bank)
        assert before[0] == {ids[0]: "小微贷", ids[1]: "小微贷"}
        change(ids)
        db.session.commit()
        rows, _counts, built = _page(bank)
        names = {
            row.id: row.name
            for row in db.session.execute(sa.select(Enterprise.id, Enterprise.name))
        }
    assert rows == expect(ids) and built == before[2] + 1
    if change is _rename:
        assert names[ids[0]] == "改名后有限公司"


def test_the_page_shows_names_read_now_and_links_each_profile(client, app, prospects):
    bank, (mine, everyone) = prospects
    login(client, bank)
    assert f'data-enterprise="{mine}"' in client.get("/bank/prospects").get_data(as_text=True)
    with app.app_context():
        _revoke([mine])
        db.session.commit()
    html = client.get("/bank/prospects").get_data(as_text=True)
    assert f'data-enterprise="{mine}"' not in html
    link = re.search(rf'<tr data-enterprise="{everyone}"><td><a href="([^"]+)"', html)
    assert link and client.get(link.group(1)).status_code == 200
    assert "1 enterprise has authorized your bank" in " ".join(html.split())


def test_a_grant_ending_drops_its_enterprise_with_no_write(app, factory, prospects):
    """Nothing is written when a grant's year ends: the kept list lasts only until then."""
    bank, (mine, everyone) = prospects
    now = dt.datetime.now(dt.UTC)
    with app.app_context():
        org = db.session.get(Organization, bank.organization_id)
        user, ending = _enterprise(factory)
        _share(user, ending, org, now=now - dt.timedelta(days=365) + dt.timedelta(hours=2))
        epoch = _epoch()
        assert set(_page(bank, now=now)[0]) == {mine, everyone, ending.id}
        later = now + dt.timedelta(hours=3)
        rows, counts, built = _page(bank, now=later)
        assert _epoch() == epoch  # nothing written meanwhile
    assert set(rows) == {mine, everyone} and counts == (2, 0) and built == 2


def test_a_revocation_set_for_later_takes_effect_then_with_no_write(app, prospects):
    """A grant whose revocation takes effect later stays listed until then, and no longer
    from then, though nothing is written at that moment."""
    bank, (mine, everyone) = prospects
    now = dt.datetime.now(dt.UTC)
    with app.app_context():
        _user, enterprise = _owner(mine)
        grant = db.session.scalar(
            sa.select(Authorization).where(Authorization.enterprise_id == enterprise.id)
        )
        grant.revoked_at = now + dt.timedelta(hours=1)
        db.session.commit()
        assert set(_page(bank, now=now)[0]) == {mine, everyone}
        epoch = _epoch()
        rows, counts, _built = _page(bank, now=now + dt.timedelta(hours=2))
        assert _epoch() == epoch
    assert set(rows) == {everyone} and counts == (1, 0)


def test_a_change_inside_the_transaction_is_seen_by_its_own_list(app, prospects):
    """A product published and flushed, not committed: the list seen in that transaction
    shows it (on PostgreSQL the epoch has not moved yet, so the kept list is not used), and
    after a rollback the next list does not."""
    bank, (mine, everyone) = prospects
    with app.app_context():
        assert _page(bank)[0] == {mine: "", everyone: ""}
        _product(db.session.get(User, bank.user_id), name="税易贷", size_classes=("small",))
        db.session.flush()
        assert _page(bank)[0] == {mine: "税易贷", everyone: "税易贷"}
        db.session.rollback()
        assert _page(bank)[0] == {mine: "", everyone: ""}


def test_a_new_local_day_counts_another_year_in_operation(app, prospects):
    """A product asking one year in operation: an enterprise founded 366 days before a
    Shanghai date qualifies from its midnight (16:00 UTC), not before."""
    bank, (mine, _everyone) = prospects
    day = local_date() + dt.timedelta(days=2)  # the grants are live then
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI).astimezone(dt.UTC)
    with app.app_context():
        _product(db.session.get(User, bank.user_id), name="一年贷", min_years_operating=Decimal(1))
        db.session.get(Enterprise, mine).founded_on = day - dt.timedelta(days=366)
        db.session.commit()
        before = _page(bank, now=midnight - dt.timedelta(minutes=1))
        after = _page(bank, now=midnight + dt.timedelta(minutes=1))
    assert before[0][mine] == "" and after[0][mine] == "一年贷"
    assert after[2] == before[2] + 1


def test_a_list_seen_inside_a_rolled_back_change_is_not_kept(app, prospects):
    """A transaction that revokes, lists and rolls back: its list shows its own change, and
    the next request shows the grant again (the rolled-back list was not kept)."""
    bank, (mine, everyone) = prospects
    with app.app_context():
        assert set(_page(bank)[0]) == {mine, everyone}
        _revoke([mine])
        db.session.flush()
        assert set(_page(bank)[0]) == {everyone}
        db.session.rollback()
        assert set(_page(bank)[0]) == {mine, everyone}
        db.session.rollback()
        assert set(_page(bank)[0]) == {mine, everyone}


def test_the_page_reads_live_grants_even_if_the_epoch_missed_a_change(app, prospects, monkeypatch):
    """Were a change ever to leave the epoch as it was, the page's rows would still come
    through the live grants, and a kept list naming an enterprise no grant allows any more
    would be matched again at once: neither its row nor the counts show it."""
    bank, (mine, everyone) = prospects
    monkeypatch.setattr(bank_views, "match_epoch", lambda: ((7, 7), False))
    with app.app_context():
        assert set(_page(bank)[0]) == {mine, everyone}
        _revoke([mine])
        db.session.commit()
        rows, counts, built = _page(bank)
        assert rows == {everyone: ""} and counts == (1, 0) and built == 2
        again = _page(bank)
    assert again == ({everyone: ""}, (1, 0), 2)  # the list matched again is kept


def _epoch():
    return tuple(db.session.execute(sa.select(MatchEpoch.n, MatchEpoch.stamp)).one())


@pytest.mark.parametrize(
    "statement,changes",
    [
        ("UPDATE authorization_grant SET revoked_at = valid_from", True),
        ("UPDATE authorization_grant SET scopes = 'tax'", True),
        ("UPDATE authorization_grant SET use_count = use_count + 1", False),
        ("UPDATE authorization_grant SET expiry_reminder_sent_at = valid_from", False),
        ("UPDATE enterprise SET region_code = '350103'", True),
        ("UPDATE enterprise SET employees = employees + 1", False),
        ("DELETE FROM authorization_grant", True),
    ],
)
def test_the_epoch_changes_with_what_matching_reads_only(app, prospects, statement, changes):
    with app.app_context():
        before = _epoch()
        db.session.execute(sa.text(statement))
        db.session.commit()
        after = _epoch()
        assert (after != before) is changes
        if changes and db.session.get_bind().dialect.name == "postgresql":
            assert after[0] == before[0] + 1  # once per transaction, whatever the rows


def test_a_process_keeps_a_bounded_number_of_lists():
    lists = bank_views.ProspectLists(2)
    now = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)

    def listing(epoch):
        return bank_views.ProspectList(
            (epoch, 0), now, now + dt.timedelta(hours=1), bank_views.array("q"),
            bank_views.array("I"), (), 0, (), bank_views.array("I"), (), bank_views.array("I"),
            (),
        )  # fmt: skip

    for bank_id in (1, 2):
        lists.put(bank_id, listing(1))
    assert lists.get(1, (1, 0), now) is not None  # bank 1 is now the most recently used
    lists.put(3, listing(1))
    assert lists.get(2, (1, 0), now) is None and lists.get(1, (1, 0), now) is not None
    assert lists.get(1, (2, 0), now) is None  # another epoch
    assert lists.get(1, (1, 0), now + dt.timedelta(hours=1)) is None  # past valid_until
    assert lists.get(1, (1, 0), now - dt.timedelta(seconds=1)) is None  # before it was built


def _columns_read(statement):
    """(table, column) of every table column a statement reads, subqueries included."""
    found = set()
    for element in sa.sql.visitors.iterate(statement):
        table = getattr(element, "table", None)
        if isinstance(element, sa.Column) and table is not None:
            table = getattr(table, "element", table)  # an alias: its table
            if isinstance(table, sa.Table):  # (a subquery's columns are its tables')
                found.add((table.name, element.name))
    return found


def test_the_epoch_covers_every_column_the_list_reads(app):
    """What the kept list is matched from and checked against is in ``MATCH_INPUTS`` (a
    table with None: any column), the migration installed the triggers of exactly those,
    and its own copy of them is the same."""
    import importlib.util
    from pathlib import Path

    read = set()
    for statement in (
        bank_views._prospects_select(),
        bank_views._page_select(),
        bank_views._transitions_select(),
        products._published_by(),
    ):
        read |= _columns_read(statement)
    assert {"authorization_grant", "enterprise", "credit_profile", "loan_product", "loan"} <= {
        table for table, _ in read
    }
    missing = {
        (table, column)
        for table, column in read
        if table not in MATCH_INPUTS
        or (MATCH_INPUTS[table] is not None and column not in MATCH_INPUTS[table])
    }
    assert not missing, f"read by the prospect list but not counted by the epoch: {missing}"
    path = Path(__file__).parents[2] / "migrations/versions/0023_match_epoch.py"
    spec = importlib.util.spec_from_file_location("migration_0023", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.INPUTS == MATCH_INPUTS
    with app.app_context():
        if db.session.get_bind().dialect.name == "postgresql":
            installed = db.session.scalars(
                sa.text(
                    "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE t.tgname LIKE 'match_epoch_%' AND c.relnamespace = "
                    "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
                )
            ).all()
        else:
            installed = db.session.scalars(
                sa.text("SELECT tbl_name FROM sqlite_master WHERE name LIKE 'match_epoch_%'")
            ).all()
    assert set(installed) == set(MATCH_INPUTS)


def test_a_writer_on_another_search_path_still_commits(pg_app):
    """PostgreSQL runs the epoch's trigger at the writer's commit, under the writer's
    search_path: the function names its table with the schema it was installed in."""
    from tests.conftest import Factory

    account = Factory(pg_app).enterprise()
    with pg_app.app_context():
        before = _epoch()
        db.session.execute(
            sa.text("UPDATE enterprise SET name = 'Renamed Co.' WHERE organization_id = :org"),
            {"org": account.organization_id},
        )
        db.session.execute(sa.text("SET LOCAL search_path = public"))
        db.session.commit()
        assert _epoch()[0] == before[0] + 1
