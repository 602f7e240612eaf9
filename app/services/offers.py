"""Offer arithmetic: repayment schedules, totals and the annualised rate (年化利率), in Decimal.

Money is ``Decimal`` throughout (``float`` is refused); amounts are rounded to the fen (0.01)
half-up, as banks print them. Rates are annual percentages (``Decimal("6")`` is 6 % a year);
the monthly rate is the annual rate / 12.

Repayment methods (``RepaymentMethod``):

* ``equal_installment`` (等额本息): the same payment every month,
  ``P·r·(1+r)^n / ((1+r)^n − 1)`` rounded to the fen (``P/n`` at a zero rate).
* ``equal_principal`` (等额本金): the same principal every month (``P/n`` rounded) plus the
  month's interest on the outstanding balance.
* ``interest_only`` (按月付息、到期还本): the month's interest every month, the principal with
  the last payment.
* ``bullet`` (到期一次还本付息): nothing until the last month, then the principal and simple
  interest for the whole term, ``P · annual rate · months / 12``. The schedule still has one
  row per month (payments of zero) so every schedule is a monthly cash-flow series.

Each month's interest is the outstanding balance × the monthly rate, rounded to the fen. The
last instalment takes whatever principal is left, so principals always sum exactly to the
principal and the final balance is exactly zero.

:func:`apr` is the annual percentage rate of the cash flows as disclosed in China (年化利率,
the IRR method the PBoC asks lenders to use): the monthly internal rate of return of
"receive principal − upfront fee at month 0, pay ``payments[k-1]`` at month k", × 12, in
percent. :func:`effective_annual_rate` is the same IRR compounded, ``(1+i)^12 − 1``. Both are
found by bisection in Decimal to a monthly-rate width of 1e-12 and returned rounded to six
decimals of a percent: the result is within 1e-6 percentage points of the exact rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Literal, get_args

RepaymentMethod = Literal["equal_installment", "equal_principal", "interest_only", "bullet"]
METHODS: tuple[RepaymentMethod, ...] = get_args(RepaymentMethod)

CENT = Decimal("0.01")
RATE_QUANTUM = Decimal("0.000001")  # result tolerance of apr / effective_annual_rate, in pct
_IRR_WIDTH = Decimal("1e-12")  # bisection stops when the monthly-rate bracket is this narrow
_PRECISION = 40


@dataclass(frozen=True, slots=True)
class Instalment:
    """One month of a schedule: what is paid, split into interest and principal, and the
    principal still outstanding after it."""

    month: int
    payment: Decimal
    interest: Decimal
    principal: Decimal
    balance: Decimal


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _decimal(name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{name} must be a Decimal (or int), got {type(value).__name__}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{name} must be a finite number, got {result}")
    return result


def _validate(
    principal: Decimal, annual_rate_pct: Decimal, months: int, method: str
) -> tuple[Decimal, Decimal]:
    p = _decimal("principal", principal)
    if p <= 0:
        raise ValueError(f"principal must be > 0, got {p}")
    rate = _decimal("annual_rate_pct", annual_rate_pct)
    if rate < 0:
        raise ValueError(f"annual_rate_pct must be ≥ 0, got {rate}")
    if isinstance(months, bool) or not isinstance(months, int):
        raise TypeError(f"months must be an int, got {type(months).__name__}")
    if months < 1:
        raise ValueError(f"months must be ≥ 1, got {months}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if p != _money(p):
        raise ValueError(f"principal must be a whole number of fen, got {p}")
    return p, rate


def schedule(
    principal: Decimal, annual_rate_pct: Decimal, months: int, method: RepaymentMethod
) -> list[Instalment]:
    """The monthly repayment schedule (see the module docstring for each method)."""
    p, rate = _validate(principal, annual_rate_pct, months, method)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        r = rate / 100 / 12
        level = Decimal("0.00")
        if method == "equal_installment":
            if r == 0:
                level = _money(p / months)
            else:
                growth = (1 + r) ** months
                level = _money(p * r * growth / (growth - 1))
        elif method == "equal_principal":
            level = _money(p / months)
        rows: list[Instalment] = []
        balance = p
        for month in range(1, months + 1):
            last = month == months
            if method == "bullet":
                interest = _money(p * rate / 100 * months / 12) if last else Decimal("0.00")
            else:
                interest = _money(balance * r)
            if last:
                repaid = balance
            elif method == "equal_installment":
                repaid = level - interest
            elif method == "equal_principal":
                repaid = level
            else:  # interest_only, bullet
                repaid = Decimal("0.00")
            # Rounding to the fen can make a tiny loan's level payment round below its
            # interest or above the balance: never negative amortisation, never overpayment.
            repaid = min(max(repaid, Decimal("0.00")), balance)
            balance -= repaid
            rows.append(
                Instalment(
                    month=month,
                    payment=interest + repaid,
                    interest=interest,
                    principal=repaid,
                    balance=balance,
                )
            )
    return rows


def total_repayable(
    principal: Decimal, annual_rate_pct: Decimal, months: int, method: RepaymentMethod
) -> Decimal:
    """Everything the borrower pays back under the schedule (principal and interest)."""
    return sum(
        (row.payment for row in schedule(principal, annual_rate_pct, months, method)),
        Decimal("0.00"),
    )


def total_interest(
    principal: Decimal, annual_rate_pct: Decimal, months: int, method: RepaymentMethod
) -> Decimal:
    """The interest paid over the schedule (``total_repayable − principal``)."""
    return sum(
        (row.interest for row in schedule(principal, annual_rate_pct, months, method)),
        Decimal("0.00"),
    )


def _monthly_irr(principal: Decimal, upfront_fee: Decimal, payments: Sequence[Decimal]) -> Decimal:
    p = _decimal("principal", principal)
    if p <= 0:
        raise ValueError(f"principal must be > 0, got {p}")
    fee = _decimal("upfront_fee", upfront_fee)
    if fee < 0:
        raise ValueError(f"upfront_fee must be ≥ 0, got {fee}")
    if fee >= p:
        raise ValueError(f"upfront_fee must be less than the principal, got {fee}")
    if not payments:
        raise ValueError("payments must not be empty")
    flows = [_decimal(f"payments[{k}]", amount) for k, amount in enumerate(payments)]
    if any(amount < 0 for amount in flows):
        raise ValueError("payments must all be ≥ 0")
    if sum(flows) <= 0:
        raise ValueError("payments must include a positive payment")
    net = p - fee

    with localcontext() as ctx:
        ctx.prec = _PRECISION

        def npv(i: Decimal) -> Decimal:
            # Present value of the repayments at monthly rate i, less what was received.
            # Strictly decreasing in i on (−1, ∞), from +∞ to −net: exactly one root.
            discount = 1 / (1 + i)
            factor = Decimal(1)
            total = Decimal(0)
            for amount in flows:
                factor *= discount
                total += amount * factor
            return total - net

        lo, hi = Decimal("-0.5"), Decimal("0.05")
        while npv(lo) < 0:  # repayments far below what was received
            lo = (lo - 1) / 2  # halves the distance to −1
        while npv(hi) > 0:
            hi *= 2
        while hi - lo > _IRR_WIDTH:
            mid = (lo + hi) / 2
            if npv(mid) > 0:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2


def _rate_pct(rate: Decimal) -> Decimal:
    """A rate as a percentage to six decimals, never printed as ``-0.000000``."""
    pct = (rate * 100).quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP)
    return pct.copy_abs() if pct.is_zero() else pct


def apr(principal: Decimal, upfront_fee: Decimal, payments: Sequence[Decimal]) -> Decimal:
    """The annual percentage rate (年化利率, IRR method), in percent, to 1e-6.

    ``payments[k]`` is paid at the end of month ``k + 1``; the borrower receives
    ``principal − upfront_fee`` at month 0. The monthly IRR × 12.
    """
    irr = _monthly_irr(principal, upfront_fee, payments)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return _rate_pct(irr * 12)


def effective_annual_rate(
    principal: Decimal, upfront_fee: Decimal, payments: Sequence[Decimal]
) -> Decimal:
    """The effective annual rate of the same cash flows, ``(1 + monthly IRR)^12 − 1``, in
    percent, to 1e-6."""
    irr = _monthly_irr(principal, upfront_fee, payments)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return _rate_pct((1 + irr) ** 12 - 1)
