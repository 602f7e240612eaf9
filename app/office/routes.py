"""The financial office: platform overview, banks and users."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.auth.access import role_required
from app.extensions import db
from app.forms import ConfirmForm
from app.office import bp
from app.office.forms import NewBankForm, NewUserForm, RoleForm
from app.security import reauth_required
from app.services import accounts, organizations
from models import Organization, OrgKind, Role, User


@bp.get("/")
def home() -> Any:
    return render_template("office/home.html", counts=organizations.platform_counts(current_user))


@bp.route("/banks", methods=["GET", "POST"])
@reauth_required(methods=("POST",))
def banks() -> Any:
    form = NewBankForm()
    created = None
    if form.validate_on_submit():
        if current_user.role is not Role.ADMIN:
            abort(403)
        try:
            bank = accounts.create_organization(current_user, OrgKind.BANK, form.name.data)
            admin, password = accounts.create_user(
                current_user, bank, form.admin_email.data, form.admin_name.data, Role.ADMIN
            )
        except accounts.AccountError as exc:
            db.session.rollback()
            target = {"name": form.name, "email": form.admin_email}.get(exc.field or "")
            if target is not None:
                target.errors = [*target.errors, str(exc.message)]
            else:
                flash(str(exc.message), "error")
        else:
            db.session.commit()
            created = {"bank": bank.name, "email": admin.email, "password": password}
            form = NewBankForm(formdata=None)
    rows = organizations.organizations(current_user, OrgKind.BANK)
    status = 422 if form.errors else 200
    return render_template("office/banks.html", form=form, rows=rows, created=created), status


@bp.route("/organizations/<int:org_id>/users", methods=["GET", "POST"])
@reauth_required(methods=("POST",))
def org_users(org_id: int) -> Any:
    org = organizations.organization(org_id)
    if org is None:
        abort(404)
    form = NewUserForm()
    created = None
    if form.validate_on_submit():
        if current_user.role is not Role.ADMIN:
            abort(403)
        try:
            user, password = accounts.add_user(
                current_user, org, form.email.data, form.display_name.data, Role(form.role.data)
            )
        except accounts.AccountError as exc:
            db.session.rollback()
            form.email.errors = [*form.email.errors, str(exc.message)]
        else:
            db.session.commit()
            created = {"email": user.email, "password": password}
            form = NewUserForm(formdata=None)
    return render_org_users(org, form, created)


def render_org_users(org: Organization, form: NewUserForm, created: Any = None) -> Any:
    from app.office.user_routes import ENDPOINTS

    return render_template(
        "office/users.html",
        org=org,
        users=organizations.users_of(current_user, org),
        form=form,
        manage=accounts.may_manage_users(current_user, org),
        confirm=ConfirmForm(),
        role_form=RoleForm(formdata=None),
        endpoints=ENDPOINTS,
        created=created,
    ), (422 if form.errors else 200)


@bp.post("/users/<int:user_id>/active/<int:active>")
@role_required(Role.ADMIN)
@reauth_required()
def set_active(user_id: int, active: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    if user.id == current_user.id:
        flash(_("You cannot disable your own account."), "error")
    else:
        try:
            accounts.set_user_active(current_user, user, bool(active))
        except accounts.PermissionRefused:
            abort(403)
        db.session.commit()
        flash(
            _("%(email)s enabled.", email=user.email)
            if active
            else _("%(email)s disabled; their sessions have ended.", email=user.email),
            "success",
        )
    return redirect(url_for("office.org_users", org_id=user.organization_id))
