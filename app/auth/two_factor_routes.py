"""Two-factor login step, TOTP enrolment and removal, recovery codes, re-authentication."""

from __future__ import annotations

import time
from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user
from werkzeug.wrappers import Response

from app.auth import bp
from app.auth.access import landing_endpoint
from app.auth.forms import EnrolForm, ReauthForm, TwoFactorForm
from app.auth.redirects import safe_next
from app.extensions import db, limiter
from app.forms import ConfirmForm
from app.security import mark_authenticated, reauth_required, two_factor_required_for
from app.services import accounts, audit
from app.services import two_factor as tf
from models import User
from models.base import utcnow

PENDING = "2fa_pending"
PENDING_SECONDS = 300
MAX_CODE_TRIES = 5

# Pages a user who must enrol in two-factor authentication may still open.
_OPEN_WHILE_ENROLLING = {
    "auth.two_factor_setup",
    "auth.logout",
    "auth.reauth",
    "static",
    "main.set_language",
    "main.healthz",
}


def _totp_rate_limit() -> str:
    return str(current_app.config["TOTP_RATE_LIMIT"])


def start_second_factor(user: User, target: str | None) -> Response:
    """The password was right: remember who is half logged in and ask for the code."""
    session.clear()
    session[PENDING] = {"uid": user.id, "at": int(time.time()), "next": target, "tries": 0}
    return redirect(url_for("auth.two_factor"))


def _pending_user() -> User | None:
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        session.pop(PENDING, None)
        return None
    user = db.session.get(User, pending.get("uid"))
    if user is None or not user.is_active or not user.two_factor_enabled:
        return None
    return user


@bp.route("/2fa", methods=["GET", "POST"])
@limiter.limit(_totp_rate_limit, methods=["POST"])
def two_factor() -> Any:
    user = _pending_user()
    if user is None:
        flash(_("Please log in again."), "info")
        return redirect(url_for("auth.login"))
    form = TwoFactorForm()
    if form.validate_on_submit():
        pending = session[PENDING]
        if user.locked_until is not None and user.locked_until > utcnow():
            session.pop(PENDING, None)
            flash(_("Too many failed attempts. This account is locked; try again later."), "error")
            return redirect(url_for("auth.login"))
        try:
            kind = tf.verify(user, form.code.data)
        except accounts.AccountError as exc:
            db.session.commit()  # keep the failure count
            pending["tries"] = pending.get("tries", 0) + 1
            session[PENDING] = pending
            if pending["tries"] >= MAX_CODE_TRIES:
                session.pop(PENDING, None)
                flash(_("Too many wrong codes. Please log in again."), "error")
                return redirect(url_for("auth.login"))
            form.code.errors = [str(exc.message)]
        else:
            target = safe_next(pending.get("next"))
            session.clear()
            accounts.start_session(user, request.remote_addr, request.headers.get("User-Agent"))
            login_user(user)
            mark_authenticated()
            user.failed_logins = 0
            db.session.commit()
            if kind == "recovery":
                flash(
                    _(
                        "You used a recovery code; it will not work again. %(n)d left.",
                        n=tf.remaining_recovery_codes(user),
                    ),
                    "info",
                )
            return redirect(target or url_for(landing_endpoint(user.org_kind)))
    status = 401 if form.code.errors else 200
    return render_template("auth/two_factor.html", form=form), status


@bp.before_app_request
def _enforce_enrolment() -> Any:
    """``REQUIRE_2FA_FOR``: a bank or office user without two-factor must enrol first."""
    if request.endpoint in _OPEN_WHILE_ENROLLING or request.blueprint == "api":
        return None
    if not current_user.is_authenticated or current_user.two_factor_enabled:
        return None
    if not two_factor_required_for(current_user.org_kind):
        return None
    if request.headers.get("HX-Request"):
        response = Response(status=204)
        response.headers["HX-Redirect"] = url_for("auth.two_factor_setup")
        return response
    return redirect(url_for("auth.two_factor_setup"))


@bp.route("/2fa/setup", methods=["GET", "POST"])
@login_required
@reauth_required()
def two_factor_setup() -> Any:
    user: User = current_user
    required = two_factor_required_for(user.org_kind)
    if user.two_factor_enabled:
        return render_template(
            "auth/two_factor_status.html",
            remaining=tf.remaining_recovery_codes(user),
            required=required,
            form=ConfirmForm(),
        )
    form = EnrolForm()
    if form.validate_on_submit():
        try:
            codes = tf.confirm_enrolment(user, form.code.data)
        except accounts.AccountError as exc:
            db.session.rollback()
            form.code.errors = [str(exc.message)]
        else:
            db.session.commit()
            return render_template("auth/recovery_codes.html", codes=codes, new_enrolment=True)
    elif request.method == "GET" or user.totp_secret is None:
        tf.begin_enrolment(user)
        db.session.commit()
    uri = tf.provisioning_uri(user)
    return render_template(
        "auth/two_factor_setup.html",
        form=form,
        uri=uri,
        qr=tf.qr_data_uri(uri),
        secret=user.totp_secret,
        required=required,
    ), (422 if form.code.errors else 200)


@bp.post("/2fa/recovery-codes")
@login_required
@reauth_required()
def two_factor_recovery_codes() -> Any:
    user: User = current_user
    if not ConfirmForm().validate_on_submit() or not user.two_factor_enabled:
        return redirect(url_for("auth.two_factor_setup"))
    codes = tf.new_recovery_codes(user)
    db.session.commit()
    return render_template("auth/recovery_codes.html", codes=codes, new_enrolment=False)


@bp.post("/2fa/disable")
@login_required
@reauth_required()
def two_factor_disable() -> Response:
    user: User = current_user
    if ConfirmForm().validate_on_submit() and user.two_factor_enabled:
        tf.disable(user)
        db.session.commit()
        flash(_("Two-factor authentication is off."), "success")
    return redirect(url_for("auth.two_factor_setup"))


@bp.route("/reauth", methods=["GET", "POST"])
@login_required
@limiter.limit(_totp_rate_limit, methods=["POST"])
def reauth() -> Any:
    """Confirm the password (and the second factor when enrolled) before a sensitive change."""
    user: User = current_user
    form = ReauthForm()
    target = safe_next(request.args.get("next")) or url_for(landing_endpoint(user.org_kind))
    if form.validate_on_submit():
        try:
            accounts.confirm_password(user, form.password.data)
            if user.two_factor_enabled:
                if not form.code.data:
                    raise accounts.AccountError(
                        _("Enter the code from your authenticator app."), field="code"
                    )
                tf.verify(user, form.code.data)
        except accounts.AccountError as exc:
            db.session.commit()  # keep the failure count
            field = getattr(form, exc.field or "password")
            field.errors = [*field.errors, str(exc.message)]
        else:
            audit.record("user.reauth", actor=user, object_type="user", object_id=user.id)
            db.session.commit()
            mark_authenticated()
            return redirect(target)
    status = 401 if form.errors else 200
    enrolled = user.two_factor_enabled
    return render_template("auth/reauth.html", form=form, two_factor=enrolled), status
