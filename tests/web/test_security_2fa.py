"""TOTP two-factor: enrolment, login, replay, recovery codes, mandatory enrolment, rate limit."""

from __future__ import annotations

import re
import time

import pyotp
import sqlalchemy as sa

from app.extensions import db
from models import AuditEvent, OrgKind, RecoveryCode, User
from tests.conftest import TEST_PASSWORD, csrf_token, login


def _secret(app, user_id: int) -> str:
    with app.app_context():
        secret = db.session.get(User, user_id).totp_secret
        assert secret
        return secret


def _code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def _enrol(client, app, account) -> tuple[str, list[str]]:
    page = client.get("/auth/2fa/setup")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    secret = _secret(app, account.user_id)
    assert f'data-testid="totp-secret">{secret}<' in html
    assert 'src="data:image/svg+xml' in html  # the QR code, rendered on the server
    assert f"otpauth://totp/Xinyidai:{account.email.replace('@', '%40')}" in html
    response = client.post(
        "/auth/2fa/setup",
        data={"code": _code(secret), "csrf_token": csrf_token(client, "/auth/reauth")},
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", response.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def _logout(client) -> None:
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/auth/reauth")})


def _password_step(client, account):
    response = client.post(
        "/auth/login",
        data={
            "email": account.email,
            "password": account.password,
            "csrf_token": csrf_token(client),
        },
    )
    assert response.status_code == 302
    return response


def _code_step(client, code: str):
    return client.post(
        "/auth/2fa", data={"code": code, "csrf_token": csrf_token(client, "/auth/2fa")}
    )


def test_enrolment_then_login_asks_for_the_code(client, app, factory):
    account = factory.user(OrgKind.BANK)
    login(client, account)
    secret, _codes = _enrol(client, app, account)
    with app.app_context():
        user = db.session.get(User, account.user_id)
        assert user.two_factor_enabled
        raw = db.session.execute(
            sa.text("SELECT totp_secret FROM user_account WHERE id = :i"), {"i": user.id}
        ).scalar_one()
        assert raw.startswith("v1:") and secret not in raw  # stored encrypted
    _logout(client)

    response = _password_step(client, account)
    assert response.headers["Location"] == "/auth/2fa"
    assert client.get("/bank/").status_code == 302  # not logged in yet
    wrong = _code_step(client, "000000" if _code(secret) != "000000" else "111111")
    assert wrong.status_code == 401
    assert "not correct" in wrong.get_data(as_text=True)
    ok = _code_step(client, _code(secret, 1))
    assert ok.status_code == 302 and ok.headers["Location"] == "/bank/"
    assert client.get("/bank/").status_code == 200


def test_a_code_is_not_accepted_twice(client, app, factory):
    account = factory.user(OrgKind.OFFICE)
    login(client, account)
    secret, _ = _enrol(client, app, account)
    _logout(client)
    code = _code(secret, 1)
    _password_step(client, account)
    assert _code_step(client, code).status_code == 302
    _logout(client)
    _password_step(client, account)
    replay = _code_step(client, code)
    assert replay.status_code == 401  # same code, within its window: refused
    assert client.get("/office/").status_code == 302
    # An earlier step than the last accepted one is refused too.
    assert _code_step(client, _code(secret, 0)).status_code == 401


def test_recovery_code_works_exactly_once(client, app, factory):
    account = factory.user(OrgKind.BANK)
    login(client, account)
    _secret_value, codes = _enrol(client, app, account)
    _logout(client)
    _password_step(client, account)
    used = _code_step(client, codes[0].upper())
    assert used.status_code == 302
    assert "9 left" in client.get("/bank/").get_data(as_text=True)
    _logout(client)
    _password_step(client, account)
    assert _code_step(client, codes[0]).status_code == 401
    with app.app_context():
        rows = db.session.scalars(sa.select(RecoveryCode)).all()
        assert len(rows) == 10 and sum(r.used_at is not None for r in rows) == 1
        assert all(codes[0] not in r.code_hash for r in rows)  # only hashes are stored


def test_disable_and_new_recovery_codes_need_a_fresh_confirmation(client, app, factory):
    account = factory.user(OrgKind.BANK)
    login(client, account)
    secret, _ = _enrol(client, app, account)
    with client.session_transaction() as sess:
        sess["auth_at"] = int(time.time()) - 3600
    token = csrf_token(client, "/bank/")
    response = client.post(
        "/auth/2fa/disable", data={"csrf_token": token}, headers={"Referer": "http://localhost/"}
    )
    assert response.headers["Location"].startswith("/auth/reauth")
    # The confirmation asks for the code as well, since two-factor is on.
    no_code = client.post("/auth/reauth", data={"password": TEST_PASSWORD, "csrf_token": token})
    assert no_code.status_code == 401
    confirmed = client.post(
        "/auth/reauth",
        data={"password": TEST_PASSWORD, "code": _code(secret, 1), "csrf_token": token},
    )
    assert confirmed.status_code == 302
    assert client.post("/auth/2fa/disable", data={"csrf_token": token}).status_code == 302
    with app.app_context():
        user = db.session.get(User, account.user_id)
        assert not user.two_factor_enabled and user.totp_secret is None
        assert db.session.scalars(sa.select(RecoveryCode)).all() == []
        actions = set(db.session.scalars(sa.select(AuditEvent.action)))
        assert {"user.2fa_enable", "user.2fa_disable", "user.reauth"} <= actions


def test_mandatory_enrolment_for_bank_users(client, app, factory, make_app):
    strict = make_app(REQUIRE_2FA_FOR="bank,office")
    browser = strict.test_client()
    browser.set_cookie("lang", "en")
    bank = factory.user(OrgKind.BANK)
    sme = factory.enterprise()
    login(browser, bank)
    response = browser.get("/bank/")
    assert response.status_code == 302 and response.headers["Location"] == "/auth/2fa/setup"
    page = browser.get("/auth/2fa/setup").get_data(as_text=True)
    assert "requires two-factor" in page
    secret = _secret(app, bank.user_id)
    browser.post(
        "/auth/2fa/setup",
        data={"code": _code(secret), "csrf_token": csrf_token(browser, "/auth/reauth")},
    )
    assert browser.get("/bank/").status_code == 200
    # Enterprises are not in the list: no enrolment asked.
    other = strict.test_client()
    login(other, sme)
    assert other.get("/enterprise/").status_code == 200


def test_wrong_codes_are_rate_limited_and_end_the_pending_login(client, app, factory):
    account = factory.user(OrgKind.BANK)
    login(client, account)
    secret, _ = _enrol(client, app, account)
    _logout(client)
    _password_step(client, account)
    bad = "000000" if _code(secret) != "000000" else "111111"
    statuses = [_code_step(client, bad).status_code for _ in range(5)]
    assert statuses[:4] == [401] * 4
    assert statuses[4] == 302  # fifth wrong code: back to the password
    response = client.get("/auth/2fa")
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login"


def test_pending_login_expires(client, app, factory):
    account = factory.user(OrgKind.BANK)
    login(client, account)
    secret, _ = _enrol(client, app, account)
    _logout(client)
    _password_step(client, account)
    token = csrf_token(client, "/auth/2fa")
    with client.session_transaction() as sess:
        pending = sess["2fa_pending"]
        pending["at"] -= 301
        sess["2fa_pending"] = pending
    response = client.post("/auth/2fa", data={"code": _code(secret, 1), "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login"
    assert client.get("/bank/").status_code == 302


def test_code_attempts_are_rate_limited_per_client(client, app, factory, monkeypatch):
    account = factory.user(OrgKind.BANK)
    login(client, account)
    secret, _ = _enrol(client, app, account)
    _logout(client)
    _password_step(client, account)
    monkeypatch.setitem(app.config, "TOTP_RATE_LIMIT", "2 per minute")
    bad = "000000" if _code(secret) != "000000" else "111111"
    token = csrf_token(client, "/auth/2fa")
    statuses = [
        client.post("/auth/2fa", data={"code": bad, "csrf_token": token}).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 429]
