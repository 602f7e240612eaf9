"""Offer arithmetic against hand-computed cases: schedules, totals, APR and effective rate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.offers import (
    METHODS,
    Instalment,
    RepaymentMethod,
    apr,
    effective_annual_rate,
    schedule,
    total_interest,
    total_repayable,
)

P = Decimal("120000")
RATE = Decimal("6")
TOL = Decimal("0.000001")


def _payments(rows: list[Instalment]) -> list[Decimal]:
    return [row.payment for row in rows]


def _npv(monthly_rate: float, net: float, payments: list[Decimal]) -> float:
    """Independent float check of an IRR: present value of payments less the net received."""
    return sum(float(p) / (1 + monthly_rate) ** (k + 1) for k, p in enumerate(payments)) - net


def test_equal_installment_120k_12_months_6_pct() -> None:
    """r = 6 % / 12 = 0.005; (1.005)^12 = 1.0616778118645;
    payment = 120000 × 0.005 × 1.0616778 / 0.0616778 = 600 × 17.21306 = 10327.97 (10327.9728…).
    Month 1: interest 120000 × 0.005 = 600.00, principal 9727.97, balance 110272.03.
    Month 2: interest 110272.03 × 0.005 = 551.36015 → 551.36, principal 9776.61.
    Month 12 takes the remaining balance 10276.61, interest 10276.61 × 0.005 = 51.38 → 10327.99.
    Total = 11 × 10327.97 + 10327.99 = 123935.66; interest 3935.66.
    """
    rows = schedule(P, RATE, 12, "equal_installment")
    assert len(rows) == 12
    assert rows[0] == Instalment(
        1, Decimal("10327.97"), Decimal("600.00"), Decimal("9727.97"), Decimal("110272.03")
    )
    assert rows[1].interest == Decimal("551.36")
    assert rows[1].principal == Decimal("9776.61")
    assert all(row.payment == Decimal("10327.97") for row in rows[:-1])
    assert rows[-1] == Instalment(
        12, Decimal("10327.99"), Decimal("51.38"), Decimal("10276.61"), Decimal("0.00")
    )
    assert sum(row.principal for row in rows) == P
    assert total_repayable(P, RATE, 12, "equal_installment") == Decimal("123935.66")
    assert total_interest(P, RATE, 12, "equal_installment") == Decimal("3935.66")


def test_equal_principal_120k_12_months_6_pct() -> None:
    """Principal 120000 / 12 = 10000.00 a month. Month k interest = (120000 − 10000(k−1)) × 0.005
    = 600, 550, …, 50. First payment 10600.00, last 10050.00.
    Interest = 50 × (12 + 11 + … + 1) = 50 × 78 = 3900.00; total 123900.00.
    """
    rows = schedule(P, RATE, 12, "equal_principal")
    assert rows[0].payment == Decimal("10600.00")
    assert rows[0].balance == Decimal("110000.00")
    assert rows[-1].payment == Decimal("10050.00")
    assert [row.interest for row in rows] == [Decimal(50 * k) for k in range(12, 0, -1)]
    assert total_interest(P, RATE, 12, "equal_principal") == Decimal("3900.00")
    assert total_repayable(P, RATE, 12, "equal_principal") == Decimal("123900.00")


def test_interest_only_and_bullet_12_months() -> None:
    """Interest only: 600.00 a month, the 12th also repays 120000 → 120600.00; interest 7200.
    Bullet: nothing for 11 months, then 120000 + 120000 × 6 % × 12/12 = 127200.00.
    """
    io = schedule(P, RATE, 12, "interest_only")
    assert [row.payment for row in io[:-1]] == [Decimal("600.00")] * 11
    assert all(row.balance == P for row in io[:-1])
    assert io[-1].payment == Decimal("120600.00")
    assert total_interest(P, RATE, 12, "interest_only") == Decimal("7200.00")

    bullet = schedule(P, RATE, 12, "bullet")
    assert len(bullet) == 12
    assert all(row.payment == 0 and row.balance == P for row in bullet[:-1])
    assert bullet[-1] == Instalment(
        12, Decimal("127200.00"), Decimal("7200.00"), P, Decimal("0.00")
    )
    assert total_repayable(P, RATE, 12, "bullet") == Decimal("127200.00")
    # Six months: 120000 × 6 % × 6/12 = 3600.00.
    assert total_interest(P, RATE, 6, "bullet") == Decimal("3600.00")


@pytest.mark.parametrize("method", METHODS)
def test_zero_rate_loan(method: RepaymentMethod) -> None:
    """1000.00 over 3 months at 0 %: 333.33, 333.33 and the last takes 333.34 (equal
    installment / principal) or everything at the end; no interest, APR 0."""
    rows = schedule(Decimal("1000"), Decimal("0"), 3, method)
    assert all(row.interest == 0 for row in rows)
    assert sum(row.principal for row in rows) == Decimal("1000")
    assert total_repayable(Decimal("1000"), Decimal("0"), 3, method) == Decimal("1000.00")
    if method in ("equal_installment", "equal_principal"):
        assert _payments(rows) == [Decimal("333.33"), Decimal("333.33"), Decimal("333.34")]
    assert apr(Decimal("1000"), Decimal("0"), _payments(rows)) == 0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("principal", "rate", "months"),
    [
        (Decimal("120000"), Decimal("6"), 12),
        (Decimal("1000000"), Decimal("4.35"), 36),
        (Decimal("50000.01"), Decimal("3.85"), 7),
        (Decimal("0.05"), Decimal("24"), 12),
        (Decimal("3000000"), Decimal("18"), 360),
    ],
)
def test_principals_sum_exactly_and_balances_run_down(
    method: RepaymentMethod, principal: Decimal, rate: Decimal, months: int
) -> None:
    rows = schedule(principal, rate, months, method)
    assert [row.month for row in rows] == list(range(1, months + 1))
    assert sum(row.principal for row in rows) == principal
    assert rows[-1].balance == 0
    balance = principal
    for row in rows:
        assert row.payment == row.interest + row.principal
        assert row.principal >= 0 and row.interest >= 0
        balance -= row.principal
        assert row.balance == balance
        assert row.payment == row.payment.quantize(Decimal("0.01"))
    total = total_repayable(principal, rate, months, method)
    assert total == principal + total_interest(principal, rate, months, method)


@settings(max_examples=300, deadline=None)
@given(
    principal=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000000"), places=2),
    rate=st.decimals(min_value=Decimal("0"), max_value=Decimal("36"), places=4),
    months=st.integers(min_value=1, max_value=120),
    method=st.sampled_from(METHODS),
)
def test_schedule_invariants_hold_for_any_loan(
    principal: Decimal, rate: Decimal, months: int, method: RepaymentMethod
) -> None:
    rows = schedule(principal, rate, months, method)
    assert len(rows) == months
    assert sum(row.principal for row in rows) == principal
    assert rows[-1].balance == 0
    for row in rows:
        assert row.principal >= 0 and row.interest >= 0 and row.balance >= 0
        assert row.payment == row.interest + row.principal
    if principal >= 10000 and method != "bullet":
        # Interest charged monthly on the balance has an IRR of exactly the monthly rate; only
        # rounding each month's interest to the fen moves it, by at most
        # 0.005 × months / Σ balances ≤ 0.005 × 120 / (10000 × 60.5) ≈ 1e-6 a month, i.e.
        # 0.0012 percentage points a year.
        nominal = apr(principal, Decimal("0"), _payments(rows))
        assert abs(nominal - rate) < Decimal("0.002")
        assert not str(nominal).startswith("-")


def test_apr_without_fee_equals_the_nominal_rate() -> None:
    """With no fee, a loan charging 0.5 % a month on the balance has a monthly IRR of 0.5 %
    exactly → APR 6 %. Interest only and equal principal have no rounding at all; equal
    installment only its cent rounding (≈ 1e-6). The effective rate is 1.005^12 − 1 =
    6.167781 %.
    """
    methods: tuple[RepaymentMethod, ...] = ("interest_only", "equal_principal")
    for method in methods:
        payments = _payments(schedule(P, RATE, 12, method))
        assert apr(P, Decimal("0"), payments) == Decimal("6.000000")
        assert effective_annual_rate(P, Decimal("0"), payments) == Decimal("6.167781")
    payments = _payments(schedule(P, RATE, 12, "equal_installment"))
    assert abs(apr(P, Decimal("0"), payments) - Decimal("6")) <= Decimal("0.00001")


def test_bullet_apr_is_below_nominal_because_interest_is_paid_late() -> None:
    """127200 paid once after 12 months for 120000: (1 + i)^12 = 1.06, so the effective rate is
    exactly 6 % and the APR = 12 × (1.06^(1/12) − 1) = 12 × 0.00486755 = 5.841061 %."""
    payments = _payments(schedule(P, RATE, 12, "bullet"))
    assert apr(P, Decimal("0"), payments) == Decimal("5.841061")
    assert effective_annual_rate(P, Decimal("0"), payments) == Decimal("6.000000")


def test_a_one_pct_fee_raises_the_apr_above_the_nominal_rate() -> None:
    """Fee 1 % = 1200 deducted at disbursement: the borrower gets 118800 but repays as if for
    120000, so the monthly IRR rises above 0.5 %. Interest only (hand check): at i = 0.65 %
    PV = 600 × a(12) + 120000 × v^12 = 6904.8 + 111023.8 ≈ 117929 < 118800, at i = 0.55 %
    PV = 6949.1 + 112356.0 ≈ 119305 > 118800, so 6.6 % < APR < 7.8 %; the solver gives 7.038534 %.
    """
    fee = Decimal("1200")
    for method in METHODS:
        payments = _payments(schedule(P, RATE, 12, method))
        plain = apr(P, Decimal("0"), payments)
        with_fee = apr(P, fee, payments)
        assert with_fee > plain
        assert with_fee > RATE
        # The result really is the IRR: NPV ≈ 0 at the monthly rate, to the stated tolerance.
        i = float(with_fee) / 1200
        assert abs(_npv(i, 118800.0, payments)) < 0.02
        assert _npv(i - 1e-6, 118800.0, payments) > 0 > _npv(i + 1e-6, 118800.0, payments)
    io = _payments(schedule(P, RATE, 12, "interest_only"))
    assert _npv(0.0065, 118800.0, io) < 0 < _npv(0.0055, 118800.0, io)
    assert apr(P, fee, io) == Decimal("7.038534")
    assert effective_annual_rate(P, fee, io) > apr(P, fee, io)


def test_apr_when_repayments_fall_short_is_negative() -> None:
    """Receiving 1000 and repaying 990 after a month: i = 990/1000 − 1 = −1 % → APR −12 %."""
    assert apr(Decimal("1000"), Decimal("0"), [Decimal("990")]) == Decimal("-12.000000")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"principal": Decimal("0")}, "principal"),
        ({"principal": Decimal("-1")}, "principal"),
        ({"principal": Decimal("NaN")}, "principal"),
        ({"principal": Decimal("100.001")}, "principal"),
        ({"months": 0}, "months"),
        ({"months": -3}, "months"),
        ({"annual_rate_pct": Decimal("-0.01")}, "annual_rate_pct"),
        ({"method": "balloon"}, "method"),
    ],
)
def test_bad_schedule_arguments_name_the_argument(kwargs: dict[str, Any], name: str) -> None:
    args: dict[str, Any] = {
        "principal": P,
        "annual_rate_pct": RATE,
        "months": 12,
        "method": "equal_installment",
        **kwargs,
    }
    with pytest.raises(ValueError, match=name):
        schedule(**args)
    with pytest.raises(ValueError, match=name):
        total_repayable(**args)


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError, match="principal"):
        schedule(120000.0, RATE, 12, "bullet")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="months"):
        schedule(P, RATE, 12.0, "bullet")  # type: ignore[arg-type]


def test_bad_apr_arguments() -> None:
    payments = [Decimal("100")] * 12
    with pytest.raises(ValueError, match="principal"):
        apr(Decimal("0"), Decimal("0"), payments)
    with pytest.raises(ValueError, match="upfront_fee"):
        apr(Decimal("1000"), Decimal("-1"), payments)
    with pytest.raises(ValueError, match="upfront_fee"):
        apr(Decimal("1000"), Decimal("1000"), payments)
    with pytest.raises(ValueError, match="payments"):
        apr(Decimal("1000"), Decimal("0"), [])
    with pytest.raises(ValueError, match="payments"):
        apr(Decimal("1000"), Decimal("0"), [Decimal("-5"), Decimal("2000")])
    with pytest.raises(ValueError, match="payments"):
        effective_annual_rate(Decimal("1000"), Decimal("0"), [Decimal("0")])
