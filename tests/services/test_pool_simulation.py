"""Monte Carlo solvency: reproducible, and right where it can be checked by hand."""

from decimal import Decimal

import numpy as np
import pytest

from app.services import pool as pool_service
from app.services.pool_simulation import simulate, simulate_pool
from tests.services.pool_support import add_profile, make_loan, make_pool, make_world


def test_same_seed_same_figures_other_seed_other_figures():
    rng = np.random.default_rng(1)
    pds, exposures = rng.uniform(0.01, 0.1, 300), rng.uniform(1e4, 5e5, 300)
    a = simulate(pds, exposures, 2e6, rho=0.2, trials=5000, seed=42)
    b = simulate(pds, exposures, 2e6, rho=0.2, trials=5000, seed=42)
    c = simulate(pds, exposures, 2e6, rho=0.2, trials=5000, seed=43)
    assert a == b
    assert a.expected_loss != c.expected_loss
    assert sum(a.counts) == 5000 and len(a.bin_edges) == len(a.counts) + 1


@pytest.mark.parametrize("rho", [0.0, 0.3])
def test_one_loan_expected_loss_is_pd_times_cover(rho):
    p, c, principal = 0.08, 0.4, 1_000_000
    result = simulate(
        np.array([p]), np.array([c * principal]), 1e9, rho=rho, trials=100_000, seed=7
    )
    expected = p * c * principal  # 32,000
    # Binomial standard error of the mean: c·principal·sqrt(p(1−p)/n) ≈ 343.
    assert abs(result.expected_loss - expected) < 4 * 343
    assert result.var99 == c * principal  # 8 % > 1 %: the 99 % year loses the whole cover
    assert result.p_exhausted == 0.0  # the balance is far larger than any loss


def test_exhaustion_probability_in_the_obvious_cases():
    exposures = np.full(10, 100_000.0)
    certain = simulate(np.ones(10), exposures, 500_000, trials=1000, seed=1)
    assert certain.p_exhausted == 1.0 and certain.expected_loss == 1_000_000
    never = simulate(np.zeros(10), exposures, 0.0, trials=1000, seed=1)
    assert never.p_exhausted == 0.0 and never.expected_loss == 0.0 and never.var99 == 0.0
    rich = simulate(np.full(10, 0.5), exposures, 1_000_000, trials=1000, seed=1)
    assert rich.p_exhausted == 0.0  # losses can never exceed the total cover


def test_correlation_fattens_the_tail_and_stress_raises_the_mean():
    pds, exposures = np.full(200, 0.03), np.full(200, 50_000.0)
    calm = simulate(pds, exposures, 1e6, rho=0.0, trials=20_000, seed=3)
    tied = simulate(pds, exposures, 1e6, rho=0.5, trials=20_000, seed=3)
    stressed = simulate(pds, exposures, 1e6, rho=0.0, stress=2.0, trials=20_000, seed=3)
    assert tied.var99 > calm.var99 and tied.p_exhausted > calm.p_exhausted
    assert stressed.expected_loss == pytest.approx(2 * calm.expected_loss, rel=0.05)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        simulate(np.ones(2), np.ones(3), 1.0)
    with pytest.raises(ValueError):
        simulate(np.ones(2), np.ones(2), 1.0, rho=1.0)


def test_simulation_over_the_pool_uses_the_latest_pds(app_ctx, factory):
    world = make_world(factory)
    pool = make_pool(Decimal("1000000"))
    add_profile(world.enterprise.id, pd="1")  # certain default
    for _ in range(3):
        pool_service.reserve(None, make_loan(world.enterprise.id, world.product), pool=pool)
    result, missing = simulate_pool(pool, trials=200, seed=0)
    assert missing == 0 and result.loans == 3
    assert result.expected_loss == pytest.approx(3 * 40_000)
    assert result.p_exhausted == 0.0
