"""User management for banks (their own admins) and the office (any bank's and its own)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.services import accounts
from models import AuditEvent, OrgKind, Role, User, db
from tests.conftest import Account, csrf_token, login


def _user(app: Flask, user_id: int) -> User:
    user = db.session.get(User, user_id)
    assert user is not None
    return user


def _logged_in(app: Flask, account: Account) -> FlaskClient:
    other = app.test_client()
    other.set_cookie("lang", "en")
    login(other, account)
    return other


def test_bank_admin_lists_adds_and_resets_own_users(
    client: FlaskClient, app: Flask, factory, login_as
) -> None:
    admin = login_as(OrgKind.BANK)
    colleague = factory.user(OrgKind.BANK, Role.OFFICER, org_id=admin.organization_id)
    html = client.get("/bank/users").get_data(as_text=True)
    assert f'data-user="{colleague.email}"' in html and "Change role" in html
    response = client.post(
        "/bank/users",
        data={
            "display_name": "新同事",
            "email": "new@bank.example.com",
            "role": "viewer",
            "csrf_token": csrf_token(client, "/bank/users"),
        },
    )
    assert response.status_code == 200
    password = re.search(
        r'data-testid="one-time-password">([^<]+)<', response.get_data(as_text=True)
    ).group(1)
    _logged_in(app, Account("new@bank.example.com", password, 0, admin.organization_id))

    colleague_session = _logged_in(app, colleague)
    token = csrf_token(client, "/bank/users")
    response = client.post(
        f"/bank/users/{colleague.user_id}/reset-password", data={"csrf_token": token}
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"New password for {colleague.email}" in html
    new_password = re.search(r'data-testid="one-time-password">([^<]+)<', html).group(1)
    # the old password no longer works, the new one does, and the old session has ended
    assert colleague_session.get("/bank/").status_code == 302
    fresh = app.test_client()
    refused = fresh.post(
        "/auth/login",
        data={"email": colleague.email, "password": colleague.password,
              "csrf_token": csrf_token(fresh)},
    )  # fmt: skip
    assert refused.status_code != 302
    _logged_in(app, Account(colleague.email, new_password, 0, 0))
    with app.app_context():
        event = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "user.password_reset")
        )
        assert event is not None and new_password not in str(event.details)


def test_bank_admin_changes_role_and_disabling_ends_the_session(
    client: FlaskClient, app: Flask, factory, login_as
) -> None:
    admin = login_as(OrgKind.BANK)
    colleague = factory.user(OrgKind.BANK, Role.OFFICER, org_id=admin.organization_id)
    colleague_session = _logged_in(app, colleague)
    assert colleague_session.get("/bank/").status_code == 200
    token = csrf_token(client, "/bank/users")
    response = client.post(
        f"/bank/users/{colleague.user_id}/role", data={"role": "viewer", "csrf_token": token}
    )
    assert response.status_code == 302
    with app.app_context():
        assert _user(app, colleague.user_id).role is Role.VIEWER
    response = client.post(f"/bank/users/{colleague.user_id}/active/0", data={"csrf_token": token})
    assert response.status_code == 302
    assert "their sessions have ended" in client.get("/bank/users").get_data(as_text=True)
    assert colleague_session.get("/bank/").status_code == 302  # back to the login page
    with app.app_context():
        actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert {"user.role", "user.disable"} <= actions
    client.post(f"/bank/users/{colleague.user_id}/active/1", data={"csrf_token": token})
    _logged_in(app, colleague)


def test_bank_admin_cannot_touch_another_banks_users(
    client: FlaskClient, app: Flask, factory, login_as
) -> None:
    login_as(OrgKind.BANK)
    stranger = factory.user(OrgKind.BANK, Role.OFFICER)  # another bank
    token = csrf_token(client, "/bank/users")
    assert stranger.email not in client.get("/bank/users").get_data(as_text=True)
    for path, data in [
        (f"/bank/users/{stranger.user_id}/active/0", {}),
        (f"/bank/users/{stranger.user_id}/role", {"role": "admin"}),
        (f"/bank/users/{stranger.user_id}/reset-password", {}),
    ]:
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 404
    # and the office's routes are closed to banks altogether
    assert (
        client.post(
            f"/office/users/{stranger.user_id}/active/0", data={"csrf_token": token}
        ).status_code
        == 403
    )
    with app.app_context():
        user = _user(app, stranger.user_id)
        assert user.is_active and user.role is Role.OFFICER


def test_service_refuses_cross_bank_and_own_account(app_ctx, factory) -> None:
    first = factory.user(OrgKind.BANK, Role.ADMIN)
    other = factory.user(OrgKind.BANK, Role.VIEWER)
    actor = db.session.get(User, first.user_id)
    target = db.session.get(User, other.user_id)
    for call in (
        lambda: accounts.set_user_active(actor, target, False),
        lambda: accounts.change_role(actor, target, Role.ADMIN),
        lambda: accounts.reset_password(actor, target),
        lambda: accounts.add_user(actor, target.organization, "x@b.example.com", "x", Role.VIEWER),
        lambda: accounts.change_role(actor, actor, Role.VIEWER),  # not oneself
    ):
        with pytest.raises(accounts.PermissionRefused):
            call()


@pytest.mark.parametrize("role", [Role.OFFICER, Role.VIEWER])
def test_bank_officers_and_viewers_cannot_manage_users(
    client: FlaskClient, factory, login_as, role: Role
) -> None:
    me = login_as(OrgKind.BANK, role)
    colleague = factory.user(OrgKind.BANK, Role.VIEWER, org_id=me.organization_id)
    assert client.get("/bank/users").status_code == 403
    token = csrf_token(client, "/bank/")
    assert (
        client.post(
            f"/bank/users/{colleague.user_id}/active/0", data={"csrf_token": token}
        ).status_code
        == 403
    )
    assert "/bank/users" not in client.get("/bank/").get_data(as_text=True)


def test_office_admin_manages_any_banks_and_the_offices_users(
    client: FlaskClient, app: Flask, factory, login_as
) -> None:
    me = login_as(OrgKind.OFFICE)
    banker = factory.user(OrgKind.BANK, Role.OFFICER)
    colleague = factory.user(OrgKind.OFFICE, Role.VIEWER, org_id=me.organization_id)
    token = csrf_token(client, "/office/")
    response = client.post(
        f"/office/users/{banker.user_id}/role", data={"role": "admin", "csrf_token": token}
    )
    assert response.status_code == 302
    response = client.post(
        f"/office/users/{colleague.user_id}/reset-password", data={"csrf_token": token}
    )
    assert response.status_code == 200
    assert 'data-testid="one-time-password"' in response.get_data(as_text=True)
    team = client.get("/office/team")
    assert team.status_code == 302
    assert colleague.email in client.get(team.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert _user(app, banker.user_id).role is Role.ADMIN


def test_office_viewer_cannot_manage_users(client: FlaskClient, factory, login_as) -> None:
    login_as(OrgKind.OFFICE, Role.VIEWER)
    banker = factory.user(OrgKind.BANK, Role.OFFICER)
    token = csrf_token(client, "/office/")
    for path, data in [
        (f"/office/users/{banker.user_id}/role", {"role": "admin"}),
        (f"/office/users/{banker.user_id}/reset-password", {}),
        (f"/office/users/{banker.user_id}/active/0", {}),
    ]:
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 403
