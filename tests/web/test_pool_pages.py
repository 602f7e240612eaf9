"""The pool's pages: the office runs it, banks file claims on their own loans only, the
enterprise sees the pre-check but never the pool's administration."""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import loans
from app.services import pool as pool_service
from models import Enterprise, Loan, OrgKind, Role, User
from models.pool import ClaimStatus, PoolClaim, RiskPool
from tests.conftest import csrf_token, login
from tests.services.pool_support import TODAY, add_profile, make_loan, make_pool, make_world


@pytest.fixture
def setup(app, factory):
    """A funded pool with one defaulted covered loan at the first bank."""
    with app.app_context():
        world = make_world(factory)
        pool = make_pool(Decimal("1000000"))
        loan = make_loan(world.enterprise.id, world.product, Decimal("200000"))
        pool_service.reserve(None, loan, pool=pool)
        loans.record_default(world.bank, loan, TODAY)
        db.session.commit()
        ids = {
            "office": world.office.email, "bank": world.bank.email,
            "other_bank": world.other_bank.email, "sme": world.sme.email,
            "loan": loan.id, "pool": pool.id, "product": world.product.id,
        }  # fmt: skip
    return ids


def _login(client, email):
    from tests.conftest import TEST_PASSWORD, Account

    login(client, Account(email, TEST_PASSWORD, 0, 0))


def test_office_sees_figures_and_deposits_once_per_form(client, app, setup):
    _login(client, setup["office"])
    page = client.get("/office/pool").get_data(as_text=True)
    assert 'data-testid="balance">1,000,000.00' in page
    assert 'data-testid="exposure">80,000.00' in page  # 40 % of 200,000
    key = pool_service.new_request_key()
    data = {"amount": "5000.00", "memo": "追加", "request_key": key}
    for _ in range(2):  # a double click
        data["csrf_token"] = csrf_token(client, "/office/pool")
        assert client.post("/office/pool/deposit", data=data).status_code == 302
    page = client.get("/office/pool").get_data(as_text=True)
    assert 'data-testid="balance">1,005,000.00' in page
    ledger = client.get("/office/pool/ledger").get_data(as_text=True)
    assert ledger.count('data-kind="deposit"') == 2  # the seed deposit and this one
    assert 'data-testid="running-balance">1,005,000.00' in ledger


def test_office_settings_errors_are_shown_next_to_the_field(client, app, setup):
    _login(client, setup["office"])
    form = {
        "name": "池", "funding_target_wan": "1000", "coverage_ratio": "0.95",
        "first_loan_ratio": "0.5", "per_loan_cap_wan": "100", "per_bank_cap_wan": "1000",
        "leverage": "5", "period_start": "2026-01-01", "period_end": "2026-12-31",
        "csrf_token": csrf_token(client, "/office/pool/settings"),
    }  # fmt: skip
    response = client.post("/office/pool/settings", data=form)
    assert response.status_code == 422
    assert 'data-field="coverage_ratio">The coverage ratio is a share' in response.get_data(
        as_text=True
    )
    form["coverage_ratio"] = "0.35"
    assert client.post("/office/pool/settings", data=form).status_code == 302
    with app.app_context():
        assert db.session.get(RiskPool, setup["pool"]).coverage_ratio == Decimal("0.35")


def test_office_viewer_cannot_change_the_pool(client, app, factory, setup):
    with app.app_context():
        org = db.session.scalar(
            sa.select(User.organization_id).where(User.email == setup["office"])
        )
    viewer = factory.user(OrgKind.OFFICE, Role.VIEWER, org_id=org)
    login(client, viewer)
    assert client.get("/office/pool").status_code == 200
    token = csrf_token(client, "/office/pool")
    response = client.post(
        "/office/pool/deposit", data={"amount": "1", "request_key": "x", "csrf_token": token}
    )
    assert response.status_code == 403


def test_bank_files_a_claim_and_the_office_rejects_then_approves(client, app, setup):
    _login(client, setup["bank"])
    listing = client.get("/bank/claims").get_data(as_text=True)
    assert f'data-loan="{setup["loan"]}"' in listing
    path = f"/bank/claims/new/{setup['loan']}"
    assert 'data-testid="estimate">80,000.00' in client.get(path).get_data(as_text=True)
    token = csrf_token(client, path)
    short = client.post(path, data={"evidence": "", "csrf_token": token})
    assert short.status_code == 422 and 'data-field="evidence">Describe' in short.get_data(
        as_text=True
    )
    response = client.post(
        path, data={"evidence": "三次催收无果，已起诉（案号见附件）", "csrf_token": token}
    )
    assert response.status_code == 302
    with app.app_context():
        claim_id = db.session.scalar(sa.select(PoolClaim.id))
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/bank/claims")})

    _login(client, setup["office"])
    queue = client.get("/office/pool/claims").get_data(as_text=True)
    assert f'data-claim="{claim_id}"' in queue
    token = csrf_token(client, f"/office/pool/claims/{claim_id}")
    no_reason = client.post(
        f"/office/pool/claims/{claim_id}/reject", data={"reason": "", "csrf_token": token}
    )
    assert no_reason.status_code == 422
    assert "Give the bank a reason" in no_reason.get_data(as_text=True)
    ok = client.post(
        f"/office/pool/claims/{claim_id}/approve", data={"reason": "", "csrf_token": token}
    )
    assert ok.status_code == 302
    with app.app_context():
        claim = db.session.get(PoolClaim, claim_id)
        assert claim.status is ClaimStatus.PAID
        assert db.session.get(RiskPool, setup["pool"]).balance == Decimal("920000")


def test_a_bank_cannot_see_or_claim_on_another_banks_loans(client, app, setup):
    with app.app_context():
        bank = db.session.scalar(sa.select(User).where(User.email == setup["bank"]))
        loan = db.session.get(Loan, setup["loan"])
        claim = pool_service.file_claim(bank, loan, "催收与诉讼材料齐全，见附件。")
        db.session.commit()
        claim_id = claim.id
    _login(client, setup["other_bank"])
    assert client.get(f"/bank/claims/{claim_id}").status_code == 404
    assert client.get(f"/bank/claims/new/{setup['loan']}").status_code == 404
    assert f'data-claim="{claim_id}"' not in client.get("/bank/claims").get_data(as_text=True)


def test_enterprise_and_bank_cannot_reach_the_pool_admin(client, setup):
    _login(client, setup["sme"])
    for path in ("/office/pool", "/office/pool/ledger", "/office/pool/claims"):
        assert client.get(path).status_code == 403
    assert client.get("/bank/claims").status_code == 403


def test_precheck_on_the_product_page_and_the_match_list(client, app, setup):
    with app.app_context():
        enterprise_id = db.session.scalar(sa.select(Enterprise.id))
        add_profile(enterprise_id, public_credit_class="A")
        db.session.commit()
    _login(client, setup["sme"])
    page = client.get(f"/enterprise/products/{setup['product']}").get_data(as_text=True)
    assert 'data-testid="pool-eligibility" data-eligible="yes"' in page
    assert "Covered by the risk-compensation pool: 40.00%" in page
    matches = client.get("/enterprise/products").get_data(as_text=True)
    assert 'data-testid="pool-eligibility"' in matches


def test_simulation_page_draws_the_distribution(client, setup):
    _login(client, setup["office"])
    token = csrf_token(client, "/office/pool/simulation")
    response = client.post(
        "/office/pool/simulation",
        data={"rho": "0.2", "stress": "1", "lgd": "1", "trials": "2000", "seed": "7",
              "csrf_token": token},
    )  # fmt: skip
    assert response.status_code == 302 and "?job=" in response.headers["Location"]
    shown = client.get(response.headers["Location"])  # the job ran (eagerly, in tests)
    html = shown.get_data(as_text=True)
    assert shown.status_code == 200 and 'data-testid="histogram"' in html
    assert html.count("<rect") == 30 and 'value="2000"' in html  # the form keeps the run's
    again = client.post(
        "/office/pool/simulation",
        data={"rho": "0.2", "stress": "1", "lgd": "1", "trials": "2000", "seed": "7",
              "csrf_token": token},
        follow_redirects=True,
    ).get_data(as_text=True)  # fmt: skip
    pick = lambda h: h.split('data-testid="var99">')[1].split("<")[0]  # noqa: E731
    assert pick(html) == pick(again)


def test_a_simulation_shows_its_progress_until_its_figures(client, app, setup, monkeypatch):
    from app import jobs

    _login(client, setup["office"])
    monkeypatch.setattr(jobs.EagerRunner, "submit", lambda self, app, job_id: None)  # busy
    token = csrf_token(client, "/office/pool/simulation")
    location = client.post(
        "/office/pool/simulation",
        data={"rho": "0.2", "stress": "1", "lgd": "1", "trials": "1000", "seed": "3",
              "csrf_token": token},
    ).headers["Location"]  # fmt: skip
    waiting = client.get(location).get_data(as_text=True)
    assert 'data-status="queued"' in waiting and 'hx-trigger="every 1s"' in waiting
    assert 'data-testid="histogram"' not in waiting
    job_id = int(location.rsplit("=", 1)[1])
    monkeypatch.undo()
    jobs.run(app, job_id)  # a worker takes it
    done = client.get(f"/office/pool/simulation/jobs/{job_id}").get_data(as_text=True)
    assert 'data-status="succeeded"' in done and 'data-testid="histogram"' in done
    assert "hx-get" not in done
    assert client.get("/office/pool/simulation?job=999999").status_code == 404
