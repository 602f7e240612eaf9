"""A bank's administrators manage their own bank's users: list, add, change role, disable /
enable (disabling ends the user's sessions), reset the password (a one-time password is shown
once). Officers and viewers get 403; another bank's users are 404 here and refused by the
service (:func:`app.services.accounts.may_manage_users`) whatever the route."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.auth.access import role_required
from app.bank import bp
from app.extensions import db
from app.forms import ConfirmForm
from app.office.forms import NewUserForm, RoleForm
from app.security import reauth_required
from app.services import accounts, organizations
from models import Role, User

ENDPOINTS = {"active": "bank.user_set_active", "role": "bank.user_role", "reset": "bank.user_reset"}


def _render(form: NewUserForm, created: dict[str, Any] | None = None, status: int = 200) -> Any:
    org = current_user.organization
    return render_template(
        "bank/users.html",
        org=org,
        users=organizations.users_of(current_user, org),
        manage=True,
        form=form,
        confirm=ConfirmForm(),
        role_form=RoleForm(formdata=None),
        endpoints=ENDPOINTS,
        created=created,
    ), status


def _own_user(user_id: int) -> User:
    """A user of the acting admin's own bank (others: 404, as if they did not exist)."""
    user = db.session.get(User, user_id)
    if user is None or user.organization_id != current_user.organization_id:
        abort(404)
    return user


@bp.route("/users", methods=["GET", "POST"])
@role_required(Role.ADMIN)
@reauth_required(methods=("POST",))
def user_list() -> Any:
    form = NewUserForm()
    if not form.validate_on_submit():
        return _render(form, status=422 if form.errors else 200)
    try:
        user, password = accounts.add_user(
            current_user,
            current_user.organization,
            form.email.data or "",
            form.display_name.data or "",
            Role(form.role.data),
        )
    except accounts.AccountError as exc:
        db.session.rollback()
        form.email.errors = [*form.email.errors, str(exc.message)]
        return _render(form, status=422)
    db.session.commit()
    return _render(NewUserForm(formdata=None), {"email": user.email, "password": password})


@bp.post("/users/<int:user_id>/active/<int:active>")
@role_required(Role.ADMIN)
@reauth_required()
def user_set_active(user_id: int, active: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = _own_user(user_id)
    try:
        accounts.set_user_active(current_user, user, bool(active))
    except accounts.PermissionRefused as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        flash(
            _("%(email)s enabled.", email=user.email)
            if active
            else _("%(email)s disabled; their sessions have ended.", email=user.email),
            "success",
        )
    return redirect(url_for("bank.user_list"))


@bp.post("/users/<int:user_id>/role")
@role_required(Role.ADMIN)
@reauth_required()
def user_role(user_id: int) -> Any:
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    user = _own_user(user_id)
    try:
        accounts.change_role(current_user, user, Role(form.role.data))
    except accounts.PermissionRefused as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        flash(_("%(email)s's role is changed.", email=user.email), "success")
    return redirect(url_for("bank.user_list"))


@bp.post("/users/<int:user_id>/reset-password")
@role_required(Role.ADMIN)
@reauth_required()
def user_reset(user_id: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = _own_user(user_id)
    try:
        password = accounts.reset_password(current_user, user)
    except accounts.PermissionRefused as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
        return redirect(url_for("bank.user_list"))
    db.session.commit()
    created = {"email": user.email, "password": password, "reset": True}
    return _render(NewUserForm(formdata=None), created)
