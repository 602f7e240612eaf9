"""The risk-compensation pool: settings, eligibility, the ledger, claims, recoveries."""

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import applications, loans
from app.services import pool as pool_service
from app.services.accounts import AccountError, PermissionRefused
from models import AuditEvent, OrgKind, Role, User
from models.loan import LoanStatus
from models.pool import (
    ClaimStatus,
    CoverageStatus,
    PoolAccount,
    PoolCoverage,
    PoolEntryKind,
    PoolLedgerEntry,
)
from tests.services.pool_support import (
    TODAY,
    add_profile,
    make_loan,
    make_pool,
    make_world,
    settings,
)


@pytest.fixture
def world(app_ctx, factory):
    return make_world(factory)


# Settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": " "}, "name"),
        ({"coverage_ratio": Decimal("0.9")}, "coverage_ratio"),
        ({"first_loan_ratio": Decimal("0.30")}, "first_loan_ratio"),
        ({"per_loan_cap": Decimal(0)}, "per_loan_cap"),
        ({"per_bank_cap": Decimal("10")}, "per_bank_cap"),
        ({"leverage": Decimal("0.5")}, "leverage"),
        ({"period_end": TODAY - dt.timedelta(days=400)}, "period_end"),
        ({"min_grade": "ZZZ"}, "min_grade"),
        ({"region_prefixes": ("99", "3501")}, "region_prefixes"),
        ({"size_classes": ("giant",)}, "size_classes"),
    ],
)
def test_settings_are_refused_naming_the_field(app_ctx, overrides, field):
    with pytest.raises(AccountError) as err:
        pool_service.validate_settings(settings(**overrides))
    assert err.value.field == field
    assert str(err.value.message)


def test_only_office_admins_create_and_change_the_pool(world, factory):
    with pytest.raises(PermissionRefused):
        pool_service.create_pool(world.bank, settings())
    officer = db.session.get(
        User,
        factory.user(OrgKind.OFFICE, Role.OFFICER, org_id=world.office.organization_id).user_id,
    )
    with pytest.raises(PermissionRefused):
        pool_service.create_pool(officer, settings())
    pool = pool_service.create_pool(world.office, settings())
    pool_service.update_pool(world.office, pool, settings(coverage_ratio=Decimal("0.35")))
    assert pool.coverage_ratio == Decimal("0.35")
    changed = db.session.scalar(
        sa.select(AuditEvent.details).where(AuditEvent.action == "pool.settings")
    )
    assert [Decimal(v) for v in changed["changed"]["coverage_ratio"]] == [
        Decimal("0.40"),
        Decimal("0.35"),
    ]
    assert set(changed["changed"]) == {"coverage_ratio"}


# Ledger -------------------------------------------------------------------------------------


def test_deposit_is_double_entry_and_idempotent_per_request_key(world):
    pool = make_pool()
    first = pool_service.deposit(world.office, pool, Decimal("250000.50"), "req-1", "财政注资")
    again = pool_service.deposit(world.office, pool, Decimal("250000.50"), "req-1")
    db.session.commit()
    assert again.id == first.id
    assert pool.balance == Decimal("250000.50")
    assert (first.debit, first.credit) == (PoolAccount.CASH, PoolAccount.FUNDING)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PoolLedgerEntry)) == 1
    with pytest.raises(AccountError, match="another amount"):
        pool_service.deposit(world.office, pool, Decimal("1"), "req-1")
    with pytest.raises(AccountError):
        pool_service.deposit(world.office, pool, Decimal("0.001"), "req-2")
    with pytest.raises(PermissionRefused):
        pool_service.deposit(world.bank, pool, Decimal("10"), "req-3")
    assert pool_service.check_invariants(pool) == []


def test_disbursement_reserves_ratio_times_principal_capped_and_repayment_releases(world):
    pool = make_pool(Decimal("1000000"), per_loan_cap=Decimal("90000"))
    small = make_loan(world.enterprise.id, world.product, Decimal("100000"))
    big = make_loan(world.enterprise.id, world.product, Decimal("1000000"), first_loan=True)
    assert pool_service.reserve(None, small).coverage.covered_amount == Decimal("40000.00")
    covered = pool_service.reserve(None, big).coverage
    assert (covered.ratio, covered.covered_amount) == (Decimal("0.5"), Decimal("90000"))
    # Reserved once: a second call returns the same coverage and posts nothing.
    assert pool_service.reserve(None, small).coverage.id == pool_service.coverage_of(small.id).id
    assert pool.exposure == Decimal("130000")
    loans.record_repayment(world.bank, small, Decimal("100000"), TODAY)
    assert small.status is LoanStatus.REPAID
    assert pool_service.coverage_of(small.id).status is CoverageStatus.RELEASED
    assert pool.exposure == Decimal("90000")
    db.session.commit()
    assert pool_service.check_invariants(pool) == []


def test_leverage_and_per_bank_caps_refuse_coverage_but_not_the_loan(world):
    pool = make_pool(
        Decimal("20000"), leverage=Decimal("5"), per_bank_cap=Decimal("1000000")
    )  # capacity 100,000 = two loans of 100,000 at 50 %
    results = [
        pool_service.reserve(None, make_loan(world.enterprise.id, world.product, first_loan=True))
        for _ in range(3)
    ]
    assert [r.coverage is not None for r in results] == [True, True, False]
    assert "leverage" in str(results[2].refused)
    assert pool.exposure == pool.capacity == Decimal("100000")
    capped = make_pool(
        Decimal("1000000"), per_loan_cap=Decimal("50000"), per_bank_cap=Decimal("60000")
    )
    first = pool_service.reserve(None, make_loan(world.enterprise.id, world.product), pool=capped)
    second = pool_service.reserve(None, make_loan(world.enterprise.id, world.product), pool=capped)
    assert first.coverage is not None and second.coverage is None
    assert "bank's cap" in str(second.refused)


def test_the_disbursement_hook_covers_a_pool_product_loan(world):
    pool = make_pool(Decimal("1000000"))
    add_profile(world.enterprise.id)
    app = applications.create(world.sme, world.product, Decimal("300000"), 12, "周转")
    applications.submit(world.sme, app, confirm_sharing=True)
    applications.make_offer(
        world.bank, app, amount=Decimal("300000"), rate=Decimal("4.5"), term_months=12,
        fee=Decimal(0), valid_until=TODAY + dt.timedelta(days=5),
    )  # fmt: skip
    applications.accept(world.sme, app)
    loan = loans.disburse(world.bank, app, TODAY)
    coverage = pool_service.coverage_of(loan.id)
    assert coverage is not None and coverage.first_loan
    assert coverage.covered_amount == Decimal("150000.00")  # first loan: 50 %
    assert pool.exposure == Decimal("150000")
    assert "pool.reserve" in set(db.session.scalars(sa.select(AuditEvent.action)))


# Eligibility -------------------------------------------------------------------------------


def test_eligibility_explains_every_rule_and_what_would_change_it(world):
    pool = make_pool(
        Decimal("100000"),
        size_classes=("micro",),
        first_loan_only=True,
        region_prefixes=("44",),
        exclude_serious_dishonesty=True,
        min_grade="BBB",
    )
    add_profile(world.enterprise.id, public_credit_class="C")
    decision = pool_service.eligibility(
        world.enterprise, world.product, Decimal("2000000"), first_loan=False, pool=pool
    )
    assert not decision.eligible
    failed = {c.rule: c for c in decision.failed}
    assert set(failed) == {"size", "first_loan", "grade", "region", "dishonesty", "capacity"}
    assert "yours is Small" in str(failed["size"].text)
    assert "350102" in str(failed["region"].text)
    assert "yours: C" in str(failed["dishonesty"].text)
    assert "信用修复" in str(failed["dishonesty"].remedy)
    assert "no grade yet" in str(failed["grade"].text)
    assert "simulator" in str(failed["grade"].remedy)
    assert "500,000.00 CNY is free" in str(failed["capacity"].text)
    assert decision.covered_amount == Decimal("800000")  # 40 % of 2,000,000, under the cap


def test_eligibility_passes_and_states_the_cover(world):
    pool = make_pool(Decimal("1000000"), size_classes=("small",), region_prefixes=("35",))
    add_profile(world.enterprise.id, public_credit_class="B")
    decision = pool_service.eligibility(
        world.enterprise, world.product, Decimal("200000"), first_loan=True, pool=pool
    )
    assert decision.eligible and decision.ratio == Decimal("0.50")
    assert decision.covered_amount == Decimal("100000.00")


def test_eligibility_in_chinese(world):
    from flask_babel import force_locale

    pool = make_pool(Decimal("1000"), size_classes=("micro",))
    decision = pool_service.eligibility(
        world.enterprise, world.product, None, first_loan=True, pool=pool
    )
    with force_locale("zh"):
        assert "小型" in str(decision.failed[0].text)


def test_no_open_pool_is_said(world):
    decision = pool_service.eligibility(world.enterprise, world.product, None, first_loan=True)
    assert not decision.eligible and "No risk-compensation pool" in str(decision.checks[0].text)


# Claims ---------------------------------------------------------------------------------------


def _defaulted_covered_loan(world, pool, principal=Decimal("200000")):
    loan = make_loan(world.enterprise.id, world.product, principal)
    assert pool_service.reserve(None, loan, pool=pool).coverage is not None
    loans.record_repayment(world.bank, loan, Decimal("50000"), TODAY)
    loans.record_default(world.bank, loan, TODAY)
    return loan


def test_claim_workflow_file_approve_payout(world):
    pool = make_pool(Decimal("500000"))
    loan = _defaulted_covered_loan(world, pool)
    with pytest.raises(AccountError) as err:
        pool_service.file_claim(world.bank, loan, "")
    assert err.value.field == "evidence"
    claim = pool_service.file_claim(world.bank, loan, "催收三次无果，已起诉，案号(2026)闽01民初1号")
    # 40 % of the 150,000 outstanding at default.
    assert claim.amount_claimed == Decimal("60000.00") and claim.status is ClaimStatus.FILED
    with pytest.raises(AccountError, match="already open"):
        pool_service.file_claim(world.bank, loan, "again, with the same evidence")
    with pytest.raises(PermissionRefused):
        pool_service.review(world.bank, claim, "approve")
    pool_service.review(world.office, claim, "approve", "材料齐全")
    assert claim.status is ClaimStatus.PAID and claim.paid_at is not None
    from models import Notification, User

    told = {
        (db.session.get(User, n.user_id).organization_id, n.kind)
        for n in db.session.scalars(sa.select(Notification))
    }
    assert (world.office.organization_id, "claim.filed") in told
    assert (world.bank.organization_id, "claim.approved") in told
    assert pool.balance == Decimal("440000") and pool.exposure == Decimal(0)
    assert pool_service.coverage_of(loan.id).status is CoverageStatus.CLAIMED
    kinds = [
        e.kind for e in db.session.scalars(sa.select(PoolLedgerEntry).order_by(PoolLedgerEntry.id))
    ]
    assert kinds[-3:] == [PoolEntryKind.CLAIM, PoolEntryKind.RELEASE, PoolEntryKind.PAYOUT]
    with pytest.raises(AccountError, match="already been decided"):
        pool_service.review(world.office, claim, "reject", "late")
    db.session.commit()
    assert pool_service.check_invariants(pool) == []
    # A recovery after the payout shares back pro rata: 40 % of 10,000.
    loans.record_recovery(world.bank, loan, Decimal("10000"), TODAY)
    assert pool.balance == Decimal("444000") and claim.recovered_to_pool == Decimal("4000")
    assert pool_service.check_invariants(pool) == []


def test_rejection_needs_a_reason_and_keeps_the_cover(world):
    pool = make_pool(Decimal("500000"))
    loan = _defaulted_covered_loan(world, pool)
    claim = pool_service.file_claim(world.bank, loan, "催收记录与诉讼材料见附件。")
    with pytest.raises(AccountError) as err:
        pool_service.review(world.office, claim, "reject", "  ")
    assert err.value.field == "reason"
    pool_service.review(world.office, claim, "reject", "缺少法院受理通知书")
    assert claim.status is ClaimStatus.REJECTED and claim.decision_reason == "缺少法院受理通知书"
    assert pool.balance == Decimal("500000") and pool.exposure == Decimal("80000")
    # The bank may file again with better evidence.
    again = pool_service.file_claim(world.bank, loan, "补充：法院受理通知书（2026）闽01民初1号")
    assert again.status is ClaimStatus.FILED


def test_only_defaulted_covered_loans_of_the_bank_can_be_claimed(world):
    pool = make_pool(Decimal("500000"))
    active = make_loan(world.enterprise.id, world.product)
    pool_service.reserve(None, active, pool=pool)
    with pytest.raises(AccountError, match="in default"):
        pool_service.file_claim(world.bank, active, "evidence of collection efforts")
    uncovered = make_loan(world.enterprise.id, world.product)
    loans.record_default(world.bank, uncovered, TODAY)
    with pytest.raises(AccountError, match="not covered"):
        pool_service.file_claim(world.bank, uncovered, "evidence of collection efforts")
    loan = _defaulted_covered_loan(world, pool)
    with pytest.raises(PermissionRefused):
        pool_service.file_claim(world.other_bank, loan, "evidence of collection efforts")
    claim = pool_service.file_claim(world.bank, loan, "evidence of collection efforts")
    assert pool_service.claims_for_bank(world.bank) == [claim]
    assert pool_service.claims_for_bank(world.other_bank) == []
    assert [lo.id for lo, _ in pool_service.claimable_loans(world.bank)] == []


def test_an_approved_claim_waits_for_funds_then_is_paid(world):
    pool = make_pool(Decimal("20000"))  # capacity 100,000
    loan = _defaulted_covered_loan(world, pool)  # claim 60,000 > balance 20,000
    claim = pool_service.file_claim(world.bank, loan, "催收三次无果，已起诉。")
    pool_service.review(world.office, claim, "approve")
    assert claim.status is ClaimStatus.APPROVED and pool.claims_payable == Decimal("60000")
    with pytest.raises(AccountError, match="short"):
        pool_service.payout(world.office, claim)
    pool_service.deposit(world.office, pool, Decimal("50000"), "top-up")
    assert pool_service.payout(world.office, claim)
    assert claim.status is ClaimStatus.PAID
    assert (pool.balance, pool.claims_payable) == (Decimal("10000"), Decimal(0))
    db.session.commit()
    assert pool_service.check_invariants(pool) == []


def test_a_negative_balance_is_refused_by_the_database(world):
    pool = make_pool(Decimal("100"))
    db.session.commit()
    with pytest.raises(sa.exc.IntegrityError):
        db.session.execute(
            sa.update(type(pool)).where(type(pool).id == pool.id).values(balance=Decimal("-1"))
        )
        db.session.flush()
    db.session.rollback()


def test_a_loan_cannot_be_reserved_twice_in_the_database(world):
    pool = make_pool(Decimal("100000"))
    loan = make_loan(world.enterprise.id, world.product)
    pool_service.reserve(None, loan, pool=pool)
    db.session.commit()
    db.session.add(
        PoolCoverage(
            pool_id=pool.id,
            loan_id=loan.id,
            bank_org_id=loan.bank_org_id,
            ratio=Decimal("0.4"),
            covered_amount=Decimal("1"),
            first_loan=False,
        )
    )
    with pytest.raises(sa.exc.IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_ledger_running_balance(world):
    pool = make_pool(Decimal("1000"))
    pool_service.deposit(None, pool, Decimal("500"), "second")
    loan = make_loan(world.enterprise.id, world.product, Decimal("1000"))
    pool_service.reserve(None, loan, pool=pool)
    rows = pool_service.ledger(pool)
    assert [r.running_balance for r in rows] == [Decimal("1000"), Decimal("1500")] * 1 + [
        Decimal("1500")
    ]
    assert rows[-1].exposure_change == Decimal("400.00")


def test_demo_pool_is_seeded_once(app_ctx, factory):
    from app.services.demo import seed_demo

    seed_demo(0, "demo password 2026", activity=False)
    first = pool_service.seed_demo_pool()
    db.session.commit()
    pool = pool_service.latest_pool()
    assert pool is not None and pool.balance == Decimal("30000000")
    again = pool_service.seed_demo_pool()
    assert again["reserved"] == 0 and again["claims"] == 0 and first["pool_id"] == again["pool_id"]
    assert pool_service.check_invariants(pool) == []


def test_the_ledger_comes_a_page_at_a_time_with_the_balance_after_each_entry(world):
    pool = make_pool(Decimal("1000"))
    for k in range(1, 8):
        pool_service.deposit(None, pool, Decimal(k), f"deposit-{k}")
    for _ in range(3):
        loan = make_loan(world.enterprise.id, world.product, Decimal("1000"))
        assert pool_service.reserve(None, loan, pool=pool).coverage is not None
    everything = pool_service.ledger(pool)  # oldest first, read whole
    newest_first = everything[::-1]
    pages = [pool_service.ledger_page(pool, n, per_page=4) for n in (1, 2, 3)]
    assert [p.total for p in pages] == [11] * 3 and pages[0].pages == 3
    shown = [row for p in pages for row in p.items]
    assert [r.entry.id for r in shown] == [r.entry.id for r in newest_first]
    assert [r.running_balance for r in shown] == [r.running_balance for r in newest_first]
    assert pages[0].items[0].running_balance == Decimal("1028.00") == pool.balance
    assert [r.entry.id for r in pool_service.ledger(pool, limit=2)] == [
        r.entry.id for r in newest_first[:2]
    ]
