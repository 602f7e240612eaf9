"""The enterprise's credit profile page, printable report, public check and model commands."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from app.services import profiles
from models import CreditProfile, ModelStatus, ModelVersion, OrgKind, db
from tests.conftest import Account, Factory, csrf_token, login
from tests.services.test_profiles_support import (
    add_records,
    approved_version_id_fixture,  # noqa: F401  (fixture)
    enterprise_by_user,
    grant_collection,
    trained_model_dir_fixture,  # noqa: F401  (fixture)
)

_CODE = re.compile(r'data-testid="verification-code">([^<]+)<')


def _enterprise_with_records(app: Flask, factory: Factory) -> tuple[Account, int]:
    """A registered enterprise with authorized records; returns its login and id."""
    account = factory.enterprise()
    with app.app_context():
        grant_collection(account.user_id, ("social_insurance", "tax", "utilities"))
        enterprise = enterprise_by_user(account.user_id)
        add_records(enterprise, arrears_months=3)
        db.session.commit()
        return account, enterprise.id


def _recompute(client: FlaskClient) -> None:
    token = csrf_token(client, "/enterprise/profile")
    response = client.post("/enterprise/profile/recompute", data={"csrf_token": token})
    assert response.status_code == 302


def test_without_a_model_the_page_says_there_is_no_grade(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    account = factory.enterprise()
    login(client, account)
    page = client.get("/enterprise/profile").get_data(as_text=True)
    assert 'data-testid="no-profile"' in page and 'data-testid="no-model"' in page

    _recompute(client)
    page = client.get("/enterprise/profile").get_data(as_text=True)
    assert 'data-testid="no-grade"' in page
    assert "no risk model had been approved" in page
    assert 'data-testid="public-credit-class">A<' in page
    with app.app_context():
        (profile,) = db.session.query(CreditProfile).all()
        assert profile.grade is None and profile.model_version_id is None


def test_profile_page_in_english_and_chinese(
    app: Flask, client: FlaskClient, factory: Factory, approved_version_id: int
) -> None:
    account, enterprise_id = _enterprise_with_records(app, factory)
    login(client, account)
    _recompute(client)
    with app.app_context():
        profile = profiles.latest_profiles([enterprise_id])[enterprise_id]
        grade, reasons = profile.grade, profile.reasons
        assert grade is not None

    english = client.get("/enterprise/profile").get_data(as_text=True)
    assert f'data-testid="grade">{grade} ' in english
    assert "Why this grade" in english and "Credit-health simulator" in english
    assert 'data-testid="public-credit-class">B<' in english
    assert "Class B: 1 general dishonesty record(s) in the last year" in english
    against = [r for r in reasons if r["direction"] == "against"][:4]
    for reason in against:
        assert reason["text_en"] in english.replace("&#39;", "'")
    assert 'data-testid="coverage-provident_fund"' in english and "not authorized" in english
    assert 'data-testid="sparkline"' not in english  # one snapshot: no trend line yet

    client.set_cookie("lang", "zh")
    chinese = client.get("/enterprise/profile").get_data(as_text=True)
    assert 'lang="zh-CN"' in chinese
    assert "B类：近1年一般失信行为记录 1 条" in chinese
    assert "Why this grade" not in chinese and "信用健康模拟器" in chinese
    for reason in against:
        assert reason["text_zh"] in chinese

    _recompute(client)
    chinese = client.get("/enterprise/profile").get_data(as_text=True)
    assert 'data-testid="sparkline"' in chinese
    assert chinese.count('href="/enterprise/profile/') >= 2  # two snapshots in the history


def test_report_code_verifies_and_a_tampered_code_does_not(
    app: Flask, client: FlaskClient, factory: Factory, approved_version_id: int
) -> None:
    account = factory.enterprise()
    login(client, account)
    _recompute(client)
    report = client.get("/enterprise/profile/report")
    assert report.status_code == 200
    html = report.get_data(as_text=True)
    match = _CODE.search(html)
    assert match, html[:500]
    code = match.group(1)
    assert re.fullmatch(r"\d+-[A-Z2-7]{12}", code)
    assert f"/verify/{code}" in html

    anonymous = app.test_client()
    anonymous.set_cookie("lang", "en")
    checked = anonymous.get(f"/verify/{code}")
    assert checked.status_code == 200
    page = checked.get_data(as_text=True)
    assert "Genuine" in page and "测试企业" in page
    with app.app_context():
        (profile,) = db.session.query(CreditProfile).all()
        assert f'data-testid="verified-grade">{profile.grade} ' in page
    assert "Public-credit class" not in page and "probability" not in page  # nothing more

    head, tail = code.split("-")
    flipped = tail[:-1] + ("A" if tail[-1] != "A" else "B")
    for bad in (f"{head}-{flipped}", f"{int(head) + 1}-{tail}", "garbage"):
        refused = anonymous.get(f"/verify/{bad}")
        assert refused.status_code == 404
        assert 'data-testid="not-verified"' in refused.get_data(as_text=True)


def test_another_enterprise_cannot_see_my_profile(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    mine = factory.enterprise()
    login(client, mine)
    _recompute(client)
    with app.app_context():
        (profile,) = db.session.query(CreditProfile).all()
        profile_id = profile.id
    assert client.get(f"/enterprise/profile/{profile_id}").status_code == 200

    other = app.test_client()
    login(other, factory.enterprise())
    assert other.get(f"/enterprise/profile/{profile_id}").status_code == 404
    assert other.get(f"/enterprise/profile/{profile_id}/report").status_code == 404
    own = other.get("/enterprise/profile").get_data(as_text=True)
    assert 'data-testid="no-profile"' in own


def test_bank_users_are_refused_the_enterprise_pages(client: FlaskClient, login_as: object) -> None:
    login_as(OrgKind.BANK)  # type: ignore[operator]
    for path in ("/enterprise/profile", "/enterprise/profile/report", "/enterprise/profile/1"):
        assert client.get(path).status_code == 403
    assert client.post("/enterprise/profile/recompute").status_code in (400, 403)


def test_models_cli_register_approve_and_list(
    app: Flask, runner: object, trained_model_dir: Path
) -> None:
    result = runner.invoke(args=["models", "list"])  # type: ignore[attr-defined]
    assert "no model versions registered" in result.output
    result = runner.invoke(  # type: ignore[attr-defined]
        args=["models", "register", str(trained_model_dir), "--approve"]
    )
    assert result.exit_code == 0, result.output
    assert "status=approved" in result.output
    again = runner.invoke(args=["models", "register", str(trained_model_dir)])  # type: ignore[attr-defined]
    # The operator reads it in the platform language (Chinese by default).
    assert again.exit_code == 1 and "该模型已注册为第 1 版" in again.output
    listed = runner.invoke(args=["models", "list"])  # type: ignore[attr-defined]
    assert "scorecard" in listed.output and "approved" in listed.output
    with app.app_context():
        (version,) = db.session.query(ModelVersion).all()
        assert version.status is ModelStatus.APPROVED
        assert (Path(app.instance_path) / "models" / version.directory / "manifest.json").is_file()
