"""``flask seed-demo``: idempotent, demo logins work with the printed password."""

import re

import sqlalchemy as sa

from app.extensions import db
from app.services.demo import DEMO_LOGINS
from models import Enterprise, Organization, OrgKind, User
from models.codes import normalize_uscc
from tests.conftest import csrf_token


def _counts(app):
    with app.app_context():
        return (
            db.session.scalar(sa.select(sa.func.count()).select_from(Enterprise)),
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(Organization)
                .where(Organization.kind == OrgKind.BANK)
            ),
            db.session.scalar(sa.select(sa.func.count()).select_from(User)),
        )


def test_seed_demo_twice_creates_nothing_twice(app, runner, monkeypatch):
    monkeypatch.setenv("XINYIDAI_DEMO_PASSWORD", "demo password 2026")
    first = runner.invoke(args=["seed-demo", "--enterprises", "25", "--no-activity"])
    assert first.exit_code == 0, first.output
    assert "25 enterprises (25 new)" in first.output
    assert _counts(app) == (25, 3, 3)
    second = runner.invoke(args=["seed-demo", "--enterprises", "25", "--no-activity"])
    assert "(0 new)" in second.output
    assert _counts(app) == (25, 3, 3)
    more = runner.invoke(args=["seed-demo", "--enterprises", "30", "--no-activity"])
    assert "30 enterprises (5 new)" in more.output
    with app.app_context():
        for uscc in db.session.scalars(sa.select(Enterprise.uscc)):
            assert normalize_uscc(uscc) == uscc


def test_seed_demo_generates_and_prints_a_password_that_works(app, runner, monkeypatch):
    monkeypatch.delenv("XINYIDAI_DEMO_PASSWORD", raising=False)
    result = runner.invoke(args=["seed-demo", "--enterprises", "3", "--no-activity"])
    assert result.exit_code == 0, result.output
    password = re.search(r"password\s+(\S+)\s+\(generated\)", result.output).group(1)
    for email, landing in zip(
        DEMO_LOGINS.values(), ["/office/", "/bank/", "/enterprise/"], strict=True
    ):
        client = app.test_client()
        response = client.post(
            "/auth/login",
            data={"email": email, "password": password, "csrf_token": csrf_token(client)},
        )
        assert response.headers.get("Location") == landing, email


def test_seed_demo_rejects_a_weak_demo_password(runner, monkeypatch):
    monkeypatch.setenv("XINYIDAI_DEMO_PASSWORD", "short")
    result = runner.invoke(args=["seed-demo", "--enterprises", "1"])
    assert result.exit_code != 0
    assert "XINYIDAI_DEMO_PASSWORD" in result.output


def test_cli_creates_bank_and_user(app, runner):
    assert (
        runner.invoke(args=["accounts", "create-org", "--kind", "bank", "命令行银行"]).exit_code
        == 0
    )
    result = runner.invoke(
        args=[
            "accounts",
            "create-user",
            "--org",
            "命令行银行",
            "--email",
            "cli@bank.example.com",
            "--name",
            "CLI",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "One-time password:" in result.output
    missing = runner.invoke(
        args=[
            "accounts",
            "create-user",
            "--org",
            "不存在",
            "--email",
            "z@bank.example.com",
            "--name",
            "Z",
        ]
    )
    assert missing.exit_code != 0 and "No bank or office named" in missing.output


def test_seed_demo_activity_products_grants_records_profiles(app, runner, monkeypatch):
    from models import Authorization, CreditProfile, LoanProduct, ProductStatus

    monkeypatch.setenv("XINYIDAI_DEMO_PASSWORD", "demo password 2026")
    monkeypatch.setitem(app.config, "DEMO_MODEL_ENTERPRISES", 1500)
    first = runner.invoke(args=["seed-demo", "--enterprises", "6"])
    assert first.exit_code == 0, first.output
    assert "21 new products" in first.output
    created = int(re.search(r"(\d+) new applications", first.output).group(1))
    assert 0 < created <= 6
    # The demo enterprise login always gets an open financing need.
    assert int(re.search(r"(\d+) new financing needs", first.output).group(1)) >= 1
    with app.app_context():
        count = lambda model: db.session.scalar(sa.select(sa.func.count()).select_from(model))  # noqa: E731
        published = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(LoanProduct)
            .where(LoanProduct.status == ProductStatus.PUBLISHED)
        )
        assert published == 21
        grants, profiles = count(Authorization), count(CreditProfile)
        # One snapshot when the records arrived (no model approved yet: no grade), one once
        # the demo model was approved; the latest of each enterprise is graded. One more for
        # the demo's upheld objection (the corrected record's profile is recomputed).
        assert profiles == 12 + 1
        graded = db.session.scalar(
            sa.select(sa.func.count(sa.distinct(CreditProfile.enterprise_id))).where(
                CreditProfile.grade.is_not(None)
            )
        )
        assert graded == 6
    records = int(re.search(r"(\d+) records collected", first.output).group(1))
    assert records > 6 * 4 * 20  # four sources, about two years each
    second = runner.invoke(args=["seed-demo", "--enterprises", "6"])
    assert "0 new products, 0 new authorizations" in second.output
    assert "6 enterprises graded, 0 new applications, 0 new financing needs" in second.output
    with app.app_context():
        assert (count(Authorization), count(CreditProfile)) == (grants, profiles)
