"""Every dashboard figure equals a direct SQL count over the same filter; targets; exports."""

import csv
import datetime as dt
import io
from decimal import Decimal

import openpyxl
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import applications, dashboard, exports, loans, products, workdays
from app.services.accounts import AccountError, PermissionRefused
from app.services.dashboard import Filters
from models import KpiTarget, OrgKind, ProductType, RepaymentMethod, Role, User
from tests.services.test_profiles_support import enterprise_by_user

TODAY = workdays.local_date()


def _product(bank, name, product_type):
    product = products.create_draft(
        bank,
        products.ProductTerms(
            name=name, product_type=product_type, amount_min=Decimal("50000"),
            amount_max=Decimal("3000000"), term_min_months=3, term_max_months=36,
            rate_min=Decimal("3.0"), rate_max=Decimal("8.0"),
            repayment_method=RepaymentMethod.EQUAL_INSTALLMENT, response_days=3,
        ),
    )  # fmt: skip
    products.publish(bank, product)
    return product


# (bank index, product index, region, industry, amount, rate, days ago, outcome)
PLAN = [
    (0, 0, "350102", "C13", "300000", "4.0", 10, "disbursed"),
    (0, 1, "350102", "C13", "500000", "5.0", 40, "disbursed"),  # same enterprise: not first
    (0, 1, "350121", "F51", "200000", "6.0", 400, "disbursed"),  # a year before
    (1, 2, "350121", "G54", "800000", "3.6", 20, "defaulted"),
    (1, 2, "350203", "C13", "150000", "4.4", 5, "disbursed"),  # another city (Xiamen)
    (1, 2, "350203", "M73", "120000", "4.1", 3, "rejected"),
    (0, 0, "350102", "C14", "100000", "4.2", 2, "submitted"),  # still open
    (1, 2, "350102", "C13", "100000", "4.2", 30, "late"),  # never answered: past deadline
]


@pytest.fixture
def world(app_ctx, factory):
    return build_world(factory)


def build_world(factory):
    """An office, two banks and the loans and applications of :data:`PLAN` (inside an app
    context; everything committed)."""
    office = db.session.get(User, factory.user(OrgKind.OFFICE).user_id)
    banks = [db.session.get(User, factory.user(OrgKind.BANK).user_id) for _ in range(2)]
    product_list = [
        _product(banks[0], "信用贷甲", ProductType.CREDIT),
        _product(banks[0], "政采贷甲", ProductType.GOVERNMENT_PROCUREMENT),
        _product(banks[1], "税易贷乙", ProductType.TAX_BASED),
    ]
    db.session.commit()
    smes: dict[str, User] = {}
    now = dt.datetime.now(dt.UTC)
    for i, (b, p, region, industry, amount, rate, days, outcome) in enumerate(PLAN):
        key = "shared" if i in (0, 1) else str(i)
        if key not in smes:
            db.session.commit()
            smes[key] = db.session.get(User, factory.enterprise().user_id)
            enterprise = enterprise_by_user(smes[key].id)
            enterprise.region_code, enterprise.industry_code = region, industry
        sme, bank, product = smes[key], banks[b], product_list[p]
        when = now - dt.timedelta(days=days)
        app = applications.create(sme, product, Decimal(amount), 12, "周转", now=when)
        applications.submit(sme, app, confirm_sharing=True, now=when)
        if outcome in ("submitted", "late"):
            continue
        decided = when + dt.timedelta(hours=30)
        if outcome == "rejected":
            applications.reject(bank, app, ["low_grade", "policy"], now=decided)
            continue
        applications.make_offer(
            bank, app, amount=Decimal(amount), rate=Decimal(rate), term_months=12,
            fee=Decimal(0), valid_until=decided.date() + dt.timedelta(days=9), now=decided,
        )  # fmt: skip
        applications.accept(sme, app, now=decided)
        loan = loans.disburse(bank, app, when.date() + dt.timedelta(days=1), now=decided)
        if outcome == "defaulted":
            loans.record_default(bank, loan, TODAY)
    db.session.commit()
    return office, banks


def _sql(query: str, **params) -> object:
    return db.session.execute(sa.text(query), params).scalar()


LOANS_SQL = """
    SELECT {what} FROM loan l JOIN enterprise e ON e.id = l.enterprise_id
    JOIN loan_product p ON p.id = l.product_id
    WHERE l.disbursed_on >= :start AND l.disbursed_on <= :end
      AND (CAST(:bank AS INTEGER) IS NULL OR l.bank_org_id = CAST(:bank AS INTEGER))
      AND e.region_code LIKE :region {extra}
"""


def _filters_for(world):
    _office, banks = world
    year = Filters(TODAY - dt.timedelta(days=365), TODAY)
    return [
        year,
        Filters(TODAY - dt.timedelta(days=15), TODAY),
        Filters(year.start, year.end, bank_org_id=banks[1].organization_id),
        Filters(year.start, year.end, region_prefix="3501"),
        Filters(TODAY - dt.timedelta(days=800), TODAY),
    ]


def _params(f: Filters) -> dict:
    return {"start": f.start, "end": f.end, "bank": f.bank_org_id, "region": f.region_prefix + "%"}


def test_loan_figures_equal_direct_sql(world):
    office, _banks = world
    for f in _filters_for(world):
        s = dashboard.summary(office, f)
        p = _params(f)
        count = _sql(LOANS_SQL.format(what="COUNT(*)", extra=""), **p)
        amount = _sql(LOANS_SQL.format(what="COALESCE(SUM(l.principal), 0)", extra=""), **p)
        first = _sql(LOANS_SQL.format(what="COUNT(*)", extra="AND l.first_loan"), **p)
        credit = _sql(
            LOANS_SQL.format(
                what="COALESCE(SUM(l.principal), 0)",
                extra="AND p.product_type <> 'government_procurement'",
            ),
            **p,
        )
        defaulted = _sql(LOANS_SQL.format(what="COUNT(*)", extra="AND l.status = 'defaulted'"), **p)
        assert s.loans.count == count, f
        assert s.loans.amount == Decimal(str(amount)).quantize(Decimal("0.01")), f
        assert s.first_loans.count == first, f
        assert s.credit_loans.amount == Decimal(str(credit)).quantize(Decimal("0.01")), f
        assert s.defaulted == defaulted, f
        for dimension in dashboard.DIMENSIONS:
            cells = dashboard.breakdown(f, dimension)
            assert sum(c.count for c in cells) == count, (f, dimension)
            assert sum(c.amount for c in cells) == s.loans.amount, (f, dimension)
            for cell in cells:
                rows = dashboard.loan_rows(f, dimension, cell.key)
                assert len(rows) == cell.count, (f, dimension, cell)
                assert sum(r.principal for r in rows) == cell.amount
        assert len(dashboard.loan_rows(f, first_only=True)) == first


def test_hand_checked_year_figures(world):
    office, banks = world
    f = Filters(TODAY - dt.timedelta(days=365), TODAY)
    s = dashboard.summary(office, f)
    # Disbursed in the year: 300k, 500k (政采贷), 800k (defaulted), 150k.
    assert (s.loans.count, s.loans.amount) == (4, Decimal("1750000.00"))
    assert s.first_loans.count == 3  # the 500k loan was its enterprise's second
    assert s.credit_share == Decimal("71.4")  # 1,250k of 1,750k is unsecured
    # (300×4.0 + 500×5.0 + 800×3.6 + 150×4.4) / 1750 = 7240 / 1750
    assert s.average_rate == Decimal("4.14")
    # A year before: the 200k loan 400 days ago falls in it.
    assert s.year_before.amount == Decimal("200000.00")
    assert s.growth == Decimal("775.0")
    # Applications: 7 sent in the year (the one 400 days ago not); 5 decided, 4 offers.
    assert (s.submitted, s.decided, s.offered) == (7, 5, 4)
    assert s.approval_rate == Decimal("80.0")
    assert s.median_days_to_decision == Decimal("1.3")  # 30 hours
    # Due: the 5 decided and the one never answered; on time: the 5 answered in 30 hours.
    assert (s.due, s.on_time) == (6, 5)
    assert s.within_deadline == Decimal("83.3")
    league = {r.bank.id: r for r in dashboard.league_table(office, f)}
    second = league[banks[1].organization_id]
    assert (second.received, second.decided, second.offered, second.loans) == (4, 3, 2, 2)
    assert second.rejections == {"low_grade": 1, "policy": 1}
    assert second.default_rate == Decimal("50.0") and second.within_deadline == Decimal("75.0")


def test_application_drill_down_matches_the_counts(world):
    office, _banks = world
    for f in _filters_for(world):
        s = dashboard.summary(office, f)
        assert len(dashboard.application_rows(f, "submitted")) == s.submitted
        assert len(dashboard.application_rows(f, "decided")) == s.decided
        assert len(dashboard.application_rows(f, "offered")) == s.offered
        assert len(dashboard.application_rows(f, "due")) == s.due
        assert len(dashboard.application_rows(f, "on_time")) == s.on_time
        assert len(dashboard.application_rows(f, "late")) == s.due - s.on_time


def test_only_the_office_sees_the_dashboard(world):
    _office, banks = world
    with pytest.raises(PermissionRefused):
        dashboard.summary(banks[0], dashboard.default_filters())
    with pytest.raises(PermissionRefused):
        dashboard.league_table(banks[0], dashboard.default_filters())


def test_bad_filters_name_the_field():
    with pytest.raises(AccountError) as err:
        Filters(TODAY, TODAY - dt.timedelta(days=1))
    assert err.value.field == "end"
    with pytest.raises(AccountError) as err:
        Filters(TODAY, TODAY, region_prefix="35a")
    assert err.value.field == "region"


def test_targets_have_defaults_history_and_an_admin_gate(world, factory):
    office, _banks = world
    assert dashboard.targets() == {
        "volume_growth": Decimal("30"),
        "credit_share": Decimal("25"),
        "within_deadline": Decimal("90"),
    }
    dashboard.set_target(office, "credit_share", Decimal("80"))
    dashboard.set_target(office, "credit_share", Decimal("60"))
    assert dashboard.targets()["credit_share"] == Decimal("60")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(KpiTarget)) == 2  # history
    checks = {
        c.metric: c
        for c in dashboard.against_targets(
            dashboard.summary(office, Filters(TODAY - dt.timedelta(days=365), TODAY))
        )
    }
    assert checks["credit_share"].met is True  # 71.4 ≥ 60
    assert checks["within_deadline"].met is False  # 83.3 < 90
    with pytest.raises(AccountError):
        dashboard.set_target(office, "credit_share", Decimal("NaN"))
    with pytest.raises(AccountError):
        dashboard.set_target(office, "nonsense", Decimal("1"))
    db.session.commit()
    officer = db.session.get(
        User, factory.user(OrgKind.OFFICE, Role.OFFICER, org_id=office.organization_id).user_id
    )
    with pytest.raises(PermissionRefused):
        dashboard.set_target(officer, "credit_share", Decimal("10"))


def test_exports_escape_formulas_in_csv_and_xlsx():
    sheet = exports.Sheet(
        "=Sheet",
        ["名称", "=SUM(A1)"],
        [["=HYPERLINK(\"http://x\")", Decimal("12.50")], ["+86 123", 3], ["-1+1", -2],
         ["@cmd", None], ["正常", Decimal("0")], ["\tTAB", 1]],
    )  # fmt: skip
    rows = list(csv.reader(io.StringIO(exports.to_csv([sheet]).decode("utf-8-sig"))))
    assert rows[0] == ["名称", "'=SUM(A1)"]
    assert [r[0] for r in rows[1:]] == [
        "'=HYPERLINK(\"http://x\")", "'+86 123", "'-1+1", "'@cmd", "正常", "'\tTAB",
    ]  # fmt: skip
    assert [r[1] for r in rows[1:]] == ["12.50", "3", "-2", "", "0", "1"]  # numbers stay numbers

    book = openpyxl.load_workbook(io.BytesIO(exports.to_xlsx([sheet])))
    ws = book.worksheets[0]
    assert ws.title == "=Sheet"
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values[1] == ['\'=HYPERLINK("http://x")', 12.5]
    assert values[3] == ["'-1+1", -2]
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)  # no formulas
