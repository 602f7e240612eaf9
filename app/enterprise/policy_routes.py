"""The enterprise's support policies: which it qualifies for and why, claims, their status."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.enterprise import bp
from app.extensions import db
from app.forms import ConfirmForm
from app.services import policies
from app.services.accounts import AccountError, PermissionRefused
from models import PolicyKind


def _render(errors: dict[int, str] | None = None) -> Any:
    return render_template(
        "enterprise/policies.html",
        matches=policies.for_enterprise_view(current_user),
        kinds=policies.KIND_LABELS,
        fee_kind=PolicyKind.GUARANTEE_FEE_SUBSIDY,
        errors=errors or {},
        form=ConfirmForm(),
    )


@bp.get("/policies")
def policy_list() -> Any:
    return _render()


@bp.post("/policies/<int:policy_id>/apply")
def policy_apply(policy_id: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    policy = policies.get_policy(policy_id, published_only=True)
    if policy is None:
        abort(404)
    try:
        loan = policies.own_loan(current_user, int(request.form.get("loan_id") or 0))
    except (ValueError, PermissionRefused):
        abort(404)
    fee: Decimal | None = None
    raw_fee = (request.form.get("guarantee_fee_paid") or "").replace(",", "").strip()
    try:
        fee = Decimal(raw_fee) if raw_fee else None
    except InvalidOperation:
        db.session.rollback()
        return _render({policy.id: _("Enter the guarantee fee as a number.")}), 422
    try:
        application = policies.apply(current_user, policy, loan, fee)
    except PermissionRefused:
        db.session.rollback()
        abort(403)
    except AccountError as exc:
        db.session.rollback()
        return _render({policy.id: str(exc.message)}), 422
    db.session.commit()
    flash(
        _(
            "Applied: %(n)s CNY claimed. The financial office will decide and tell you.",
            n=f"{application.amount_claimed:,}",
        ),
        "success",
    )
    return redirect(url_for("enterprise.policy_application_list"))


@bp.get("/policies/applications")
def policy_application_list() -> Any:
    return render_template(
        "enterprise/policy_applications.html",
        rows=policies.applications_of_enterprise(current_user),
        kinds=policies.KIND_LABELS,
        labels=policies.APPLICATION_LABELS,
    )
