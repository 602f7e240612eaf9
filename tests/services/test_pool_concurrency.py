"""Ledger invariants under concurrent writers (PostgreSQL) and under any sequence of
operations (a Hypothesis state machine, on the suite's database)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from app.extensions import db
from app.services import loans
from app.services import pool as pool_service
from models import User
from models.loan import Loan, LoanStatus
from models.pool import ClaimStatus, PoolCoverage, PoolLedgerEntry, RiskPool
from tests.conftest import Factory
from tests.services.pool_support import TODAY, make_loan, make_pool, make_world

K = 10


def test_200_concurrent_reservations_fill_a_pool_sized_for_exactly_k_loans(pg_app):
    """Balance 100,000 × leverage 5 = 500,000 of cover; each loan needs 50,000 → K = 10."""
    with pg_app.app_context():
        world = make_world(Factory(pg_app))
        pool = make_pool(Decimal("100000"), leverage=Decimal("5"), coverage_ratio=Decimal("0.5"))
        loan_ids = [make_loan(world.enterprise.id, world.product).id for _ in range(200)]
        pool_id = pool.id
        db.session.commit()
        db.session.remove()
    start = threading.Barrier(16)

    def reserve(loan_id: int) -> bool:
        with pg_app.app_context():
            try:
                loan = db.session.get(Loan, loan_id)
                result = pool_service.transact(lambda: pool_service.reserve(None, loan))
                return result.coverage is not None
            finally:
                db.session.remove()

    def worker(ids: list[int]) -> list[bool]:
        start.wait()
        return [reserve(i) for i in ids]

    with ThreadPoolExecutor(max_workers=16) as executor:
        outcomes = [
            ok for part in executor.map(worker, [loan_ids[i::16] for i in range(16)]) for ok in part
        ]
    with pg_app.app_context():
        pool = db.session.get(RiskPool, pool_id)
        assert sum(outcomes) == K
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PoolCoverage)) == K
        assert pool.exposure == Decimal("500000") <= pool.capacity
        assert pool.balance == Decimal("100000")
        assert pool_service.check_invariants(pool) == []
        db.session.remove()


def test_the_same_loan_reserved_concurrently_is_covered_once(pg_app):
    with pg_app.app_context():
        world = make_world(Factory(pg_app))
        make_pool(Decimal("1000000"))
        loan_id = make_loan(world.enterprise.id, world.product).id
        db.session.commit()
        db.session.remove()

    def reserve(_: int) -> int | None:
        with pg_app.app_context():
            try:
                loan = db.session.get(Loan, loan_id)
                result = pool_service.transact(lambda: pool_service.reserve(None, loan))
                return result.coverage.id if result.coverage else None
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=12) as executor:
        ids = set(executor.map(reserve, range(24)))
    with pg_app.app_context():
        assert len(ids) == 1 and None not in ids
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PoolLedgerEntry)) == 2
        pool = db.session.scalars(sa.select(RiskPool)).one()
        assert pool.exposure == Decimal("40000") and pool_service.check_invariants(pool) == []
        db.session.remove()


def test_concurrent_deposits_with_one_request_key_count_once(pg_app):
    with pg_app.app_context():
        pool_id = make_pool().id
        db.session.commit()
        db.session.remove()

    def deposit(_: int) -> int:
        with pg_app.app_context():
            try:
                pool = db.session.get(RiskPool, pool_id)
                return pool_service.transact(
                    lambda: pool_service.deposit(None, pool, Decimal("1000"), "same-click").id
                )
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=8) as executor:
        ids = set(executor.map(deposit, range(16)))
    with pg_app.app_context():
        assert len(ids) == 1
        assert db.session.get(RiskPool, pool_id).balance == Decimal("1000")
        db.session.remove()


class LedgerMachine(RuleBasedStateMachine):
    """Random deposits, reservations, repayments, defaults, claims and recoveries; after
    every step the books balance, totals match the ledger and nothing went negative."""

    world = None  # set by the test

    reserved = Bundle("reserved")
    defaulted = Bundle("defaulted")
    paid = Bundle("paid")

    def __init__(self) -> None:
        super().__init__()
        self.pool = make_pool(leverage=Decimal("4"), per_bank_cap=Decimal("100000000"))
        self.keys: dict[str, Decimal] = {}
        self.expected_balance = Decimal(0)
        self.over_levered_by_payout = False

    @rule(amount=st.integers(1, 500_000), key=st.sampled_from(["a", "b", "c", None]))
    def deposit(self, amount, key):
        key = key or pool_service.new_request_key()
        if key in self.keys:
            amount = self.keys[key]  # a replay of the same request
        else:
            self.keys[key] = Decimal(amount)
            self.expected_balance += amount
        pool_service.deposit(None, self.pool, Decimal(amount), f"{self.pool.id}-{key}")

    @rule(target=reserved, principal=st.integers(10_000, 3_000_000), first=st.booleans())
    def reserve(self, principal, first):
        loan = make_loan(
            self.world.enterprise.id, self.world.product, Decimal(principal), first_loan=first
        )
        before = self.pool.exposure
        result = pool_service.reserve(None, loan, pool=self.pool)
        if result.coverage is None:
            assert self.pool.exposure == before
            return loan.id  # an uncovered loan in the bundle is harmless
        assert self.pool.exposure <= self.pool.capacity
        self.over_levered_by_payout = False
        return loan.id

    @rule(loan_id=consumes(reserved))
    def repay(self, loan_id):
        loan = db.session.get(Loan, loan_id)
        loans.record_repayment(self.world.bank, loan, loan.outstanding, TODAY)

    @rule(target=defaulted, loan_id=consumes(reserved))
    def default(self, loan_id):
        loan = db.session.get(Loan, loan_id)
        loans.record_default(self.world.bank, loan, TODAY)
        return loan_id

    @rule(target=paid, loan_id=consumes(defaulted), approve=st.booleans())
    def claim(self, loan_id, approve):
        loan = db.session.get(Loan, loan_id)
        if pool_service.coverage_of(loan_id) is None:
            return None
        claim = pool_service.file_claim(self.world.bank, loan, "collection failed, court filed")
        pool_service.review(
            self.world.office, claim, "approve" if approve else "reject", "" if approve else "no"
        )
        if claim.status is ClaimStatus.PAID:
            self.expected_balance -= claim.amount_claimed
            self.over_levered_by_payout = True
        return loan_id if claim.status is not ClaimStatus.REJECTED else None

    @rule(loan_id=paid, amount=st.integers(1, 200_000))
    def recover(self, loan_id, amount):
        if loan_id is None:
            return
        loan = db.session.get(Loan, loan_id)
        assert loan.status is LoanStatus.DEFAULTED
        before = self.pool.balance
        loans.record_recovery(self.world.bank, loan, Decimal(amount), TODAY)
        self.expected_balance += self.pool.balance - before

    @rule()
    def pay_waiting_claims(self):
        for claim in pool_service.claims_for_office([ClaimStatus.APPROVED]):
            if claim.pool_id == self.pool.id and self.pool.balance >= claim.amount_claimed:
                pool_service.payout(self.world.office, claim)
                self.expected_balance -= claim.amount_claimed
                self.over_levered_by_payout = True

    @invariant()
    def books_balance(self):
        db.session.flush()
        assert pool_service.check_invariants(self.pool) == []
        assert self.pool.balance == self.expected_balance >= 0
        assert self.pool.exposure >= 0 and self.pool.claims_payable >= 0
        assert self.pool.exposure <= self.pool.capacity or self.over_levered_by_payout


def test_ledger_state_machine_keeps_the_invariants(app_ctx, factory):
    LedgerMachine.world = make_world(factory)
    LedgerMachine.world.bank = db.session.merge(LedgerMachine.world.bank)
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(max_examples=25, stateful_step_count=25, deadline=None),
    )
    assert isinstance(LedgerMachine.world.office, User)
