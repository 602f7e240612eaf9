"""Financing support policies: rules like products', benefit arithmetic, claims, review, budget."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import applications, loans, policies, products, workdays
from app.services.accounts import AccountError, PermissionRefused
from app.services.matching_engine import RULES
from app.services.policies import PolicyTerms
from models import (
    AuditEvent,
    CreditProfile,
    Enterprise,
    Loan,
    ModelKind,
    ModelStatus,
    ModelVersion,
    Notification,
    OrgKind,
    PolicyApplication,
    PolicyApplicationStatus,
    PolicyKind,
    PolicyStatus,
    ProductType,
    RepaymentMethod,
    Role,
    SupportPolicy,
    User,
)
from tests.conftest import Factory

TODAY = workdays.local_date()
# The factory's enterprises were founded on 2018-05-01: exactly 8.0 years (2,922 days) later.
EIGHT_YEARS_ON = dt.datetime(2026, 5, 1, 4, tzinfo=dt.UTC)


def terms(**overrides):
    values = {
        "name": "科技型中小企业贷款贴息", "kind": PolicyKind.INTEREST_SUBSIDY,
        "period_start": TODAY - dt.timedelta(days=90), "period_end": TODAY + dt.timedelta(days=90),
        "total_budget": Decimal("1000000"), "subsidy_rate_pp": Decimal("1.0"),
    }  # fmt: skip
    values.update(overrides)
    return PolicyTerms(**values)


def _bank_product(bank, product_type=ProductType.CREDIT):
    product = products.create_draft(
        bank,
        products.ProductTerms(
            name="信用快贷", product_type=product_type, amount_min=Decimal("50000"),
            amount_max=Decimal("1000000"), term_min_months=3, term_max_months=24,
            rate_min=Decimal("3.5"), rate_max=Decimal("6.5"),
            repayment_method=RepaymentMethod.EQUAL_INSTALLMENT, response_days=5,
        ),
    )  # fmt: skip
    products.publish(bank, product)
    return product


def disbursed_loan(sme, bank, product, amount="200000", rate="4.5", on=None):
    app = applications.create(sme, product, Decimal(amount), 12, "采购原材料")
    applications.submit(sme, app, confirm_sharing=True)
    applications.make_offer(
        bank, app, amount=Decimal(amount), rate=Decimal(rate), term_months=12, fee=Decimal(0),
        valid_until=TODAY + dt.timedelta(days=5),
    )  # fmt: skip
    applications.accept(sme, app)
    return loans.disburse(bank, app, on or TODAY - dt.timedelta(days=10))


@pytest.fixture
def world(app_ctx, factory):
    sme = db.session.get(User, factory.enterprise().user_id)
    bank = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    office = db.session.get(User, factory.user(OrgKind.OFFICE).user_id)
    product = _bank_product(bank)
    loan = disbursed_loan(sme, bank, product)
    db.session.commit()
    return sme, bank, office, loan


def published(office, **overrides):
    policy = policies.create(office, terms(**overrides))
    policies.publish(office, policy)
    return policy


def enterprise_of(user):
    return db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == user.organization_id)
    )


# Rules, rule by rule, with their boundaries (the products' engine) --------------------------


def _results(enterprise, policy, now=EIGHT_YEARS_ON):
    match = policies.explain(enterprise, [policy], now)[0]
    return match, {r.rule: r for r in match.results}


def test_years_in_business_pass_at_the_boundary_and_fail_just_above(world):
    sme, _bank, office, _loan = world
    enterprise = enterprise_of(sme)
    at = policies.create(office, terms(min_years_operating=Decimal("8.0")))
    above = policies.create(office, terms(min_years_operating=Decimal("8.1")))
    match, rules = _results(enterprise, at)
    assert match.eligible and rules["years_operating"].value == "8.0"
    match, rules = _results(enterprise, above)
    assert not match.eligible and not rules["years_operating"].passed
    assert "8.1" in str(rules["years_operating"].requirement)


def test_grade_class_sales_and_months_use_the_latest_profile_and_fail_without_one(world):
    sme, _bank, office, _loan = world
    enterprise = enterprise_of(sme)
    names = products.grades()
    policy = policies.create(
        office,
        terms(
            min_grade=names[3], public_credit_classes=("A", "B"),
            min_annual_sales=Decimal("1000000"), min_tax_months=12, min_social_months=6,
        ),
    )  # fmt: skip
    match, rules = _results(enterprise, policy)
    assert not match.eligible
    assert {r.rule for r in match.failed} == {
        "grade", "public_credit_class", "annual_sales", "tax_months", "social_months",
    }  # fmt: skip
    assert str(rules["grade"].value) == "no credit profile yet"
    assert str(rules["annual_sales"].remedy) == "Authorize collection of your tax data."

    model = ModelVersion(
        kind=ModelKind.SCORECARD, directory="test", content_hash="e" * 64,
        status=ModelStatus.RETIRED,
    )  # fmt: skip
    db.session.add(model)
    db.session.flush()

    def profile(rank, klass, sales, tax, social):
        db.session.add(
            CreditProfile(
                enterprise_id=enterprise.id, as_of=TODAY, grade=names[rank], grade_rank=rank,
                public_credit_class=klass, annual_sales=Decimal(sales), tax_months=tax,
                social_months=social, content_hash="0" * 64, model_version_id=model.id,
                computed_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=rank),
            )
        )  # fmt: skip
        db.session.flush()

    profile(3, "B", "1000000", 12, 6)  # every boundary exactly met
    match, rules = _results(enterprise, policy)
    assert match.eligible, [(r.rule, r.value) for r in match.failed]
    db.session.query(CreditProfile).delete()
    profile(4, "C", "999999.99", 11, 5)  # every boundary just missed
    match, rules = _results(enterprise, policy)
    assert {r.rule for r in match.failed} == {
        "grade", "public_credit_class", "annual_sales", "tax_months", "social_months",
    }  # fmt: skip
    assert str(rules["tax_months"].remedy) == "1 more months of on-time payments."


def test_industry_region_size_and_scopes_like_products(world):
    sme, _bank, office, _loan = world
    enterprise = enterprise_of(sme)  # C13, 350102
    size = enterprise.size_class.value
    cases = [
        ({"industries_allowed": ("C",)}, True),
        ({"industries_allowed": ("C13",)}, True),
        ({"industries_allowed": ("C14",)}, False),
        ({"industries_excluded": ("C",)}, False),
        ({"regions_allowed": ("35",)}, True),
        ({"regions_allowed": ("350102",)}, True),
        ({"regions_allowed": ("3502",)}, False),
        ({"regions_excluded": ("3501",)}, False),
        ({"size_classes": (size,)}, True),
        ({"size_classes": tuple(s for s in ("micro", "small", "medium") if s != size)}, False),
        ({"required_scopes": ("tax",)}, False),
    ]
    for rules, expected in cases:
        policy = policies.create(office, terms(**rules))
        match, _ = _results(enterprise, policy)
        assert match.eligible is expected, rules


def test_policy_and_product_with_the_same_rules_get_the_same_verdicts(world):
    """One engine: the explanations of a policy equal those of a product with its rules."""
    from app.services import matching

    sme, bank, office, _loan = world
    enterprise = enterprise_of(sme)
    rules = {
        "min_years_operating": Decimal("5"), "industries_allowed": ("C",),
        "regions_excluded": ("4403",), "min_tax_months": 6,
    }  # fmt: skip
    policy = policies.create(office, terms(**rules))
    product = products.create_draft(
        bank,
        products.ProductTerms(
            name="对照", product_type=ProductType.CREDIT, amount_min=Decimal(1),
            amount_max=Decimal(2), term_min_months=1, term_max_months=2, rate_min=Decimal(1),
            rate_max=Decimal(2), repayment_method=RepaymentMethod.BULLET, response_days=5, **rules,
        ),
    )  # fmt: skip
    as_product = matching.explain(enterprise, [product], EIGHT_YEARS_ON)[0].results
    as_policy = policies.explain(enterprise, [policy], EIGHT_YEARS_ON)[0].results
    assert [(r.rule, r.passed, str(r.requirement), str(r.value)) for r in as_product] == [
        (r.rule, r.passed, str(r.requirement), str(r.value)) for r in as_policy
    ]
    assert len(RULES) == 10


def test_loan_conditions_period_first_loan_type_and_standing(world):
    sme, bank, office, loan = world
    enterprise = enterprise_of(sme)
    policy = policies.create(
        office,
        terms(
            first_loan_only=True, product_types=(ProductType.CREDIT.value,),
            period_start=loan.disbursed_on, period_end=loan.disbursed_on,
        ),
    )  # fmt: skip
    check = policies.explain(enterprise, [policy])[0].loans[0]
    assert check.eligible and [r.rule for r in check.results] == [
        "loan_period", "first_loan", "product_type", "loan_standing",
    ]  # fmt: skip
    outside = policies.create(office, terms(period_start=loan.disbursed_on + dt.timedelta(days=1)))
    check = policies.explain(enterprise, [outside])[0].loans[0]
    assert not check.eligible and not check.results[0].passed
    assert str(check.results[0].remedy) == "Only loans disbursed within the policy period count."
    typed = policies.create(office, terms(product_types=(ProductType.TAX_BASED.value,)))
    assert not policies.explain(enterprise, [typed])[0].loans[0].eligible
    second = disbursed_loan(sme, bank, _bank_product(bank, ProductType.FIRST_LOAN))
    checks = {c.loan.id: c for c in policies.explain(enterprise, [policy])[0].loans}
    assert second.first_loan is False and not checks[second.id].eligible
    loans.record_default(bank, loan, TODAY)
    assert not policies.explain(enterprise, [policy])[0].loans[-1].eligible


# Benefit arithmetic, by hand ----------------------------------------------------------------


def _policy(kind, **values):
    return SupportPolicy(kind=kind, annual_cap=values.pop("annual_cap", None), **values)


def _loan(principal="200000", rate="4.5", term=12):
    return Loan(principal=Decimal(principal), rate=Decimal(rate), term_months=term, enterprise_id=0)


@pytest.mark.parametrize(
    ("values", "loan", "expected"),
    [
        # 200,000 × 1 pp × 12/12
        ({"subsidy_rate_pp": Decimal("1.0")}, _loan(), Decimal("2000.00")),
        # half of 4.5 = 2.25 > 1 pp: the smaller, 1 pp
        (
            {"subsidy_rate_pp": Decimal("1.0"), "share_pct": Decimal("50")},
            _loan(),
            Decimal("2000.00"),
        ),
        # 30 % of the interest: 4.5 × 0.3 = 1.35 pp → 2,700
        ({"share_pct": Decimal("30")}, _loan(), Decimal("2700.00")),
        # never more than the loan's own rate: 5 pp on a 4.5 % loan → 9,000
        ({"subsidy_rate_pp": Decimal("5")}, _loan(), Decimal("9000.00")),
        # a 6-month loan: half a year's subsidy
        ({"subsidy_rate_pp": Decimal("1")}, _loan(term=6), Decimal("1000.00")),
        # a 36-month loan: one year's subsidy
        ({"subsidy_rate_pp": Decimal("1")}, _loan(term=36), Decimal("2000.00")),
        # rounding half up: 123,457 × 0.75 % = 925.9275 → 925.93
        ({"subsidy_rate_pp": Decimal("0.75")}, _loan("123457"), Decimal("925.93")),
    ],
)
def test_interest_subsidy_by_hand(app_ctx, values, loan, expected):
    raw, working = policies.raw_benefit(_policy(PolicyKind.INTEREST_SUBSIDY, **values), loan)
    assert raw == expected and isinstance(raw, Decimal)
    assert working.endswith(f"= {expected:,}")


def test_guarantee_fee_and_first_loan_reward_by_hand(app_ctx):
    fee = _policy(PolicyKind.GUARANTEE_FEE_SUBSIDY, share_pct=Decimal("50"))
    raw, working = policies.raw_benefit(fee, _loan(), Decimal("3333.33"))
    assert raw == Decimal("1666.67") and working == "3,333.33 × 50.000% = 1,666.67"
    with pytest.raises(AccountError) as err:
        policies.raw_benefit(fee, _loan(), None)
    assert err.value.field == "guarantee_fee_paid"
    fixed = _policy(PolicyKind.FIRST_LOAN_REWARD, fixed_amount=Decimal("10000"))
    assert policies.raw_benefit(fixed, _loan())[0] == Decimal("10000.00")
    share = _policy(PolicyKind.FIRST_LOAN_REWARD, share_pct=Decimal("1.5"))
    assert policies.raw_benefit(share, _loan())[0] == Decimal("3000.00")


def test_the_annual_cap_counts_what_was_approved_this_year(world):
    sme, bank, office, loan = world
    policy = published(office, annual_cap=Decimal("2500"))
    first = policies.apply(sme, policy, loan)
    assert first.amount_claimed == Decimal("2000.00")
    assert first.working.endswith("min(2,000.00, 2,500.00 − 0.00) = 2,000.00")
    policies.approve(office, first)
    second_loan = disbursed_loan(sme, bank, _bank_product(bank))
    second = policies.apply(sme, policy, second_loan)
    assert second.amount_claimed == Decimal("500.00")  # 2,500 − 2,000 approved


# Claims ------------------------------------------------------------------------------------


def test_apply_with_own_disbursed_loan_once_per_loan_per_policy(world, factory):
    sme, _bank, office, loan = world
    policy = published(office)
    application = policies.apply(sme, policy, loan)
    assert application.status is PolicyApplicationStatus.SUBMITTED
    assert application.amount_claimed == Decimal("2000.00")
    with pytest.raises(AccountError, match="already applied"):
        policies.apply(sme, policy, loan)
    db.session.commit()
    other = db.session.get(User, factory.enterprise().user_id)
    with pytest.raises(PermissionRefused):
        policies.apply(other, policy, loan)
    with pytest.raises(PermissionRefused):
        policies.own_loan(other, loan.id)
    other_policy = published(office, name="另一项贴息")
    assert policies.apply(sme, other_policy, loan).loan_id == loan.id  # another policy: fine


def test_apply_refuses_drafts_unmet_rules_and_viewers(world, factory):
    sme, _bank, office, loan = world
    draft = policies.create(office, terms())
    with pytest.raises(AccountError, match="not open"):
        policies.apply(sme, draft, loan)
    strict = published(office, name="严格", regions_allowed=("11",))
    with pytest.raises(AccountError, match="registered in 11"):
        policies.apply(sme, strict, loan)
    late = published(office, name="迟", period_start=TODAY, period_end=TODAY)
    with pytest.raises(AccountError, match="disbursed between"):
        policies.apply(sme, late, loan)
    viewer = db.session.get(User, sme.id)
    viewer.role = Role.VIEWER
    with pytest.raises(PermissionRefused):
        policies.apply(viewer, published(office, name="第三"), loan)


def test_only_the_office_manages_policies(world):
    sme, bank, office, _loan = world
    for outsider in (sme, bank):
        with pytest.raises(PermissionRefused):
            policies.create(outsider, terms())
    policy = policies.create(office, terms())
    officer = db.session.get(User, office.id)
    officer.role = Role.OFFICER
    with pytest.raises(PermissionRefused):
        policies.publish(officer, policy)
    officer.role = Role.ADMIN
    policies.publish(office, policy)
    with pytest.raises(AccountError, match="cannot be edited"):
        policies.update(office, policy, terms(name="改名"))
    policies.close(office, policy)
    assert policy.status is PolicyStatus.CLOSED
    actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert {"policy.create", "policy.publish", "policy.close"} <= actions


def test_terms_are_validated_naming_the_field(app_ctx, factory):
    office = db.session.get(User, factory.user(OrgKind.OFFICE).user_id)
    bad = [
        ({"subsidy_rate_pp": None}, "subsidy_rate_pp"),
        ({"period_end": TODAY - dt.timedelta(days=365)}, "period_end"),
        ({"total_budget": Decimal(0)}, "total_budget"),
        ({"kind": PolicyKind.GUARANTEE_FEE_SUBSIDY}, "share_pct"),
        ({"kind": PolicyKind.FIRST_LOAN_REWARD, "subsidy_rate_pp": None}, "fixed_amount"),
        (
            {
                "kind": PolicyKind.FIRST_LOAN_REWARD,
                "subsidy_rate_pp": None,
                "fixed_amount": Decimal(5000),
            },
            "first_loan_only",
        ),
        ({"industries_allowed": ("C",), "industries_excluded": ("C",)}, "industries_excluded"),
        ({"min_grade": "ZZZ"}, "min_grade"),
        ({"product_types": ("mortgage",)}, "product_types"),
    ]
    for values, name in bad:
        with pytest.raises(AccountError) as err:
            policies.create(office, terms(**values))
        assert err.value.field == name, values


# Review ------------------------------------------------------------------------------------


def test_approve_within_benefit_and_budget_then_notify(world):
    sme, _bank, office, loan = world
    policy = published(office, total_budget=Decimal("1500"))
    application = policies.apply(sme, policy, loan)
    with pytest.raises(AccountError, match=r"At most 2,000\.00"):
        policies.approve(office, application, Decimal("2000.01"))
    with pytest.raises(AccountError, match=r"Only 1,500\.00 CNY of the budget is left"):
        policies.approve(office, application)
    policies.approve(office, application, Decimal("1500"))
    assert application.status is PolicyApplicationStatus.APPROVED
    assert (application.approved_amount, application.reviewer_user_id) == (
        Decimal("1500.00"),
        office.id,
    )
    assert policy.approved_total == Decimal("1500.00") and policy.remaining_budget == 0
    with pytest.raises(AccountError, match="already been decided"):
        policies.reject(office, application, "重复")
    texts = [
        (n.kind, n.params) for n in db.session.scalars(
            sa.select(Notification).where(Notification.user_id == sme.id)
        )
    ]  # fmt: skip
    assert ("policy.approved", {"policy": policy.name, "amount": "1,500.00"}) in texts


def test_reject_needs_a_reason_and_tells_the_enterprise(world):
    sme, _bank, office, loan = world
    policy = published(office)
    application = policies.apply(sme, policy, loan)
    with pytest.raises(AccountError) as err:
        policies.reject(office, application, "   ")
    assert err.value.field == "reason" and application.status is PolicyApplicationStatus.SUBMITTED
    policies.reject(office, application, "贷款用途与政策不符")
    assert application.status is PolicyApplicationStatus.REJECTED
    assert application.reason == "贷款用途与政策不符" and application.decided_at is not None
    note = db.session.scalar(
        sa.select(Notification).where(
            Notification.user_id == sme.id, Notification.kind == "policy.rejected"
        )
    )
    from app.services.notifications import text_of

    assert text_of(note) == (
        f"The financial office rejected your claim under {policy.name}: 贷款用途与政策不符"
    )
    events = list(
        db.session.scalars(
            sa.select(AuditEvent.action).where(
                AuditEvent.enterprise_id == application.enterprise_id
            )
        )
    )
    assert "policy.applied" in events and "policy.rejected" in events


def test_banks_enterprises_and_viewers_cannot_decide(world, factory):
    sme, bank, office, loan = world
    application = policies.apply(sme, published(office), loan)
    db.session.commit()
    viewer = db.session.get(User, factory.user(OrgKind.OFFICE, Role.VIEWER).user_id)
    for outsider in (sme, bank, viewer):
        with pytest.raises(PermissionRefused):
            policies.approve(outsider, application)
        with pytest.raises(PermissionRefused):
            policies.reject(outsider, application, "不")
    with pytest.raises(PermissionRefused):
        policies.applications_for_office(sme)


def test_an_enterprise_sees_only_its_own_applications(world, factory):
    sme, bank, office, loan = world
    policy = published(office)
    mine = policies.apply(sme, policy, loan)
    db.session.commit()
    other = db.session.get(User, factory.enterprise().user_id)
    other_loan = disbursed_loan(other, bank, _bank_product(bank))
    theirs = policies.apply(other, policy, other_loan)
    assert [a.id for a in policies.applications_of_enterprise(sme)] == [mine.id]
    assert [a.id for a in policies.applications_of_enterprise(other)] == [theirs.id]
    assert len(policies.applications_for_office(office)) == 2


def test_approved_totals_by_month_and_kind_equal_a_direct_sum(world):
    sme, _bank, office, loan = world
    interest = published(office)
    reward = published(
        office, name="首贷奖励", kind=PolicyKind.FIRST_LOAN_REWARD, subsidy_rate_pp=None,
        fixed_amount=Decimal("5000"), first_loan_only=True,
    )  # fmt: skip
    march = dt.datetime(2026, 3, 31, 17, tzinfo=dt.UTC)  # 1 April in Beijing
    policies.approve(office, policies.apply(sme, interest, loan), now=march)
    policies.approve(office, policies.apply(sme, reward, loan), Decimal("4000"), now=march)
    rows = policies.approved_totals(dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert [(r.month, r.kind, r.count, r.amount) for r in rows] == [
        ("2026-04", PolicyKind.INTEREST_SUBSIDY, 1, Decimal("2000.00")),
        ("2026-04", PolicyKind.FIRST_LOAN_REWARD, 1, Decimal("4000.00")),
    ]
    direct = db.session.scalar(
        sa.select(sa.func.sum(PolicyApplication.approved_amount)).where(
            PolicyApplication.status == PolicyApplicationStatus.APPROVED
        )
    )
    assert sum(r.amount for r in rows) == direct
    only = policies.approved_totals(
        dt.date(2026, 4, 1), dt.date(2026, 4, 1),
        policies.TotalsFilter(kind=PolicyKind.FIRST_LOAN_REWARD, region_prefix="35"),
    )  # fmt: skip
    assert [(r.count, r.amount) for r in only] == [(1, Decimal("4000.00"))]
    assert policies.approved_totals(dt.date(2026, 3, 1), dt.date(2026, 3, 31)) == []
    # The office dashboard shows the same support, summed per kind over the period.
    from app.services import dashboard

    cells = dashboard.support_by_kind(dashboard.Filters(dt.date(2026, 1, 1), dt.date(2026, 12, 31)))
    assert [(c.key, c.count, c.amount) for c in cells] == [
        ("interest_subsidy", 1, Decimal("2000.00")),
        ("first_loan_reward", 1, Decimal("4000.00")),
    ]
    assert (
        policies.approved_totals(
            dt.date(2026, 1, 1), dt.date(2026, 12, 31), policies.TotalsFilter(bank_org_id=-1)
        )
        == []
    )


# Concurrency (PostgreSQL) -------------------------------------------------------------------


@pytest.mark.postgres
def test_concurrent_approvals_never_exceed_the_budget_on_postgresql(pg_app):
    """Ten claims of 2,000 against a budget of 9,000, approved at the same moment by ten
    officers: exactly four succeed, the budget is never exceeded."""
    factory = Factory(pg_app)
    with pg_app.app_context():
        bank = db.session.get(User, factory.user(OrgKind.BANK).user_id)
        office_org = factory.organization(OrgKind.OFFICE)
        officers = [factory.user(OrgKind.OFFICE, Role.OFFICER, office_org) for _ in range(10)]
        admin = db.session.get(User, factory.user(OrgKind.OFFICE, org_id=office_org).user_id)
        policy = published(admin, total_budget=Decimal("9000"))
        product = _bank_product(bank)
        ids = []
        for _ in range(10):
            sme = db.session.get(User, factory.enterprise().user_id)
            ids.append(policies.apply(sme, policy, disbursed_loan(sme, bank, product)).id)
        policy_id = policy.id
        db.session.commit()
        db.session.remove()
    results: list[str] = []
    barrier = threading.Barrier(len(ids))

    def worker(account, application_id):
        with pg_app.app_context():
            user = db.session.get(User, account.user_id)
            application = db.session.get(PolicyApplication, application_id)
            barrier.wait()
            try:
                policies.approve(user, application)
                db.session.commit()
                results.append("approved")
            except AccountError:
                db.session.rollback()
                results.append("refused")
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=worker, args=pair) for pair in zip(officers, ids, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["approved"] * 4 + ["refused"] * 6
    with pg_app.app_context():
        policy = db.session.get(SupportPolicy, policy_id)
        approved = db.session.scalar(
            sa.select(sa.func.sum(PolicyApplication.approved_amount)).where(
                PolicyApplication.policy_id == policy_id
            )
        )
        assert policy.approved_total == approved == Decimal("8000.00")
        assert policy.remaining_budget == Decimal("1000.00")


@pytest.mark.postgres
def test_one_application_approved_twice_at_once_counts_once_on_postgresql(pg_app):
    factory = Factory(pg_app)
    with pg_app.app_context():
        bank = db.session.get(User, factory.user(OrgKind.BANK).user_id)
        office_org = factory.organization(OrgKind.OFFICE)
        officers = [factory.user(OrgKind.OFFICE, Role.OFFICER, office_org) for _ in range(6)]
        admin = db.session.get(User, factory.user(OrgKind.OFFICE, org_id=office_org).user_id)
        policy = published(admin)
        sme = db.session.get(User, factory.enterprise().user_id)
        application_id = policies.apply(
            sme, policy, disbursed_loan(sme, bank, _bank_product(bank))
        ).id
        policy_id = policy.id
        db.session.commit()
        db.session.remove()
    results: list[str] = []
    barrier = threading.Barrier(len(officers))

    def worker(account):
        with pg_app.app_context():
            user = db.session.get(User, account.user_id)
            application = db.session.get(PolicyApplication, application_id)
            barrier.wait()
            try:
                policies.approve(user, application)
                db.session.commit()
                results.append("approved")
            except AccountError:
                db.session.rollback()
                results.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(o,)) for o in officers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["approved"] + ["refused"] * 5
    with pg_app.app_context():
        assert db.session.get(SupportPolicy, policy_id).approved_total == Decimal("2000.00")


def test_demo_seeding_publishes_one_policy_of_each_kind_and_claims_once(world):
    from app.services.demo import DEMO_LOGINS

    _sme, _bank, office, loan = world
    office.email = DEMO_LOGINS["office"]
    db.session.flush()
    assert policies.seed_demo_policies() == 1
    rows = list(db.session.scalars(sa.select(SupportPolicy)))
    assert sorted(p.kind.value for p in rows) == sorted(k.value for k in PolicyKind)
    assert {p.status for p in rows} == {PolicyStatus.PUBLISHED}
    claim = db.session.scalar(sa.select(PolicyApplication))
    assert claim.loan_id == loan.id and claim.status is PolicyApplicationStatus.APPROVED
    assert policies.seed_demo_policies() == 0


def test_the_policies_page_reads_as_much_for_many_policies_and_loans_as_for_few(world):
    """One enterprise's policies and loans are explained without a query per pair (each
    loan's type and each policy's approvals this year are read with the lists), and the
    annual cap still counts what was approved this year."""
    from flask import current_app

    from tests.support.list_pages import capture

    sme, bank, office, loan = world
    capped = published(office, annual_cap=Decimal("2500"))
    policies.approve(office, policies.apply(sme, capped, loan))  # 2,000 approved this year
    published(office, name="首贷贴息")
    db.session.commit()
    enterprise_id = enterprise_of(sme).id

    def statements() -> tuple[int, list[policies.PolicyMatch]]:
        db.session.expunge_all()  # as a request starts: nothing in the session yet
        enterprise = db.session.get(Enterprise, enterprise_id)
        chosen = policies.published()
        with capture(current_app._get_current_object()) as found:
            matches = policies.explain(enterprise, chosen)
        return len(found.statements), matches

    ids = (sme.id, bank.id, office.id, loan.id, capped.id)
    few, _ = statements()
    sme, bank, office = (db.session.get(User, i) for i in ids[:3])
    loan_id, capped_id = ids[3:]
    for _ in range(2):
        disbursed_loan(sme, bank, _bank_product(bank))
    for n in range(3):
        published(office, name=f"贴息{n}")
    db.session.commit()
    many, matches = statements()
    assert many == few, (few, many)
    by_policy = {m.policy.id: m for m in matches}
    gains = {c.loan.id: c.benefit for c in by_policy[capped_id].loans}
    assert len(by_policy) == 5 and len(gains) == 3
    assert {g.amount for lid, g in gains.items() if lid != loan_id} == {Decimal("500.00")}
