"""The office's administrators manage the users of any bank and of the office itself:
change role and reset the password here; list, add, disable and enable in
:mod:`app.office.routes` (``org_users``, ``set_active``). Permissions are checked by the
services (:func:`app.services.accounts.may_manage_users`)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.auth.access import role_required
from app.extensions import db
from app.forms import ConfirmForm
from app.office import bp
from app.office.forms import NewUserForm, RoleForm
from app.security import reauth_required
from app.services import accounts
from models import Role, User

ENDPOINTS = {
    "active": "office.set_active",
    "role": "office.user_role",
    "reset": "office.user_reset",
}


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/team")
def team() -> Any:
    """The office's own users."""
    return redirect(url_for("office.org_users", org_id=current_user.organization_id))


@bp.post("/users/<int:user_id>/role")
@role_required(Role.ADMIN)
@reauth_required()
def user_role(user_id: int) -> Any:
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    user = _user(user_id)
    try:
        accounts.change_role(current_user, user, Role(form.role.data))
    except accounts.PermissionRefused:
        abort(403)
    db.session.commit()
    flash(_("%(email)s's role is changed.", email=user.email), "success")
    return redirect(url_for("office.org_users", org_id=user.organization_id))


@bp.post("/users/<int:user_id>/reset-password")
@role_required(Role.ADMIN)
@reauth_required()
def user_reset(user_id: int) -> Any:
    from app.office.routes import render_org_users

    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = _user(user_id)
    try:
        password = accounts.reset_password(current_user, user)
    except accounts.PermissionRefused:
        abort(403)
    db.session.commit()
    created = {"email": user.email, "password": password, "reset": True}
    return render_org_users(user.organization, NewUserForm(formdata=None), created)
