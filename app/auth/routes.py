"""Login, logout, enterprise self-registration and password change."""

from __future__ import annotations

from typing import Any

from flask import (
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from app.auth import bp
from app.auth.access import landing_endpoint
from app.auth.forms import LoginForm, PasswordChangeForm, RegistrationForm
from app.auth.redirects import safe_next
from app.auth.two_factor_routes import start_second_factor
from app.extensions import db, limiter
from app.security import mark_authenticated, reauth_required
from app.services import accounts
from models.codes import CodeError, normalize_uscc


def _login_rate_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _begin_session(user: Any) -> None:
    # A fresh cookie session at every login, so an id planted before login is worthless.
    session.clear()
    accounts.start_session(user, request.remote_addr, request.headers.get("User-Agent"))
    login_user(user)
    mark_authenticated()


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for(landing_endpoint(current_user.org_kind)))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data)
        except accounts.LoginRefused as exc:
            db.session.commit()  # keep the failure count
            error = exc.message
        else:
            target = safe_next(request.args.get("next"))
            if user.two_factor_enabled:
                # The password was right; the session starts only after the second factor.
                db.session.commit()
                return start_second_factor(user, target)
            _begin_session(user)
            db.session.commit()
            return redirect(target or url_for(landing_endpoint(user.org_kind)))
    status = 401 if error else 200
    return render_template("auth/login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout() -> Response:
    accounts.end_session(current_user.session_token)
    db.session.commit()
    logout_user()
    session.clear()
    flash(_("You have logged out."), "success")
    return redirect(url_for("main.index"))


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit("30 per hour", methods=["POST"])
def register() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for(landing_endpoint(current_user.org_kind)))
    form = RegistrationForm()
    if form.validate_on_submit():
        registration = accounts.EnterpriseRegistration(
            uscc=form.uscc.data,
            name=form.name.data,
            legal_representative=form.legal_representative.data,
            founded_on=form.founded_on.data,
            region_code=form.region_code.data,
            industry_code=form.industry_code.data,
            employees=form.employees.data,
            annual_revenue=form.annual_revenue,
            total_assets=form.total_assets,
            user_name=form.user_name.data,
            email=form.email.data,
            password=form.password.data,
            legal_rep_id_number=form.legal_rep_id_number.data or None,
            legal_rep_phone=form.legal_rep_phone.data or None,
        )
        try:
            user = accounts.register_enterprise(registration)
        except (accounts.AccountError, CodeError) as exc:
            db.session.rollback()
            field = getattr(form, getattr(exc, "field", None) or "", None)
            if field is not None:
                field.errors = [*field.errors, str(exc.message)]
            else:
                flash(str(exc.message), "error")
        else:
            _begin_session(user)
            db.session.commit()
            flash(_("Welcome! Your enterprise is registered."), "success")
            return redirect(url_for("enterprise.home"))
    status = 422 if form.errors or request.method == "POST" else 200
    return render_template("auth/register.html", form=form), status


@bp.post("/register/check-uscc")
def check_uscc() -> Any:
    """htmx: the USCC field's message while the person types (validity and duplicates)."""
    raw = request.form.get("uscc", "")
    message, ok = None, False
    if raw.strip():
        try:
            code = normalize_uscc(raw)
        except CodeError as exc:
            message = str(exc)
        else:
            if accounts.uscc_registered(code):
                message = _("This unified social credit code is already registered.")
            else:
                ok, message = True, _("Valid code.")
    return render_template("auth/_field_message.html", message=message, ok=ok)


@bp.route("/password", methods=["GET", "POST"])
@login_required
@reauth_required()
def change_password() -> Any:
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            accounts.change_password(current_user, form.current_password.data, form.password.data)
        except accounts.AccountError as exc:
            db.session.rollback()
            form.current_password.errors = [str(exc.message)]
        else:
            db.session.commit()
            flash(_("Password changed. Your other sessions have been logged out."), "success")
            return redirect(url_for(landing_endpoint(current_user.org_kind)))
    return render_template("auth/password.html", form=form)
