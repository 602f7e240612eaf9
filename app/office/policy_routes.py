"""The office's support policies (融资支持政策): drafts, publication, the claims queue."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.access import role_required
from app.extensions import db
from app.forms import ConfirmForm, show_error
from app.office import bp
from app.office.policy_forms import DecisionForm, PolicyForm
from app.services import policies, workdays
from app.services.accounts import AccountError, PermissionRefused
from app.services.paging import page_of
from models import PolicyApplicationStatus, PolicyStatus, Role, SupportPolicy

LABELS = {
    "kinds": policies.KIND_LABELS,
    "statuses": policies.STATUS_LABELS,
    "application_statuses": policies.APPLICATION_LABELS,
}


@bp.get("/policies")
def policy_list() -> Any:
    today = workdays.local_date()
    return render_template(
        "office/policies.html",
        policies=policies.all_policies(current_user),
        totals=policies.approved_totals(dt.date(today.year, 1, 1), today),
        pending=policies.count_for_office(current_user, PolicyApplicationStatus.SUBMITTED),
        **LABELS,
    )


def _policy(policy_id: int) -> SupportPolicy:
    policy = policies.get_policy(policy_id)
    if policy is None:
        abort(404)
    return policy


def _save(form: PolicyForm, policy: SupportPolicy | None) -> SupportPolicy | None:
    try:
        if policy is None:
            policy = policies.create(current_user, form.terms())
        else:
            policies.update(current_user, policy, form.terms())
    except AccountError as exc:
        db.session.rollback()
        if not show_error(form, exc.field, exc.message):
            flash(str(exc.message), "error")
        return None
    db.session.commit()
    return policy


def _render_form(form: PolicyForm, policy: SupportPolicy | None) -> Any:
    return render_template(
        "office/policy_form.html", form=form, policy=policy, action_form=ConfirmForm(), **LABELS
    ), (422 if form.errors else 200)


@bp.route("/policies/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def policy_new() -> Any:
    form = PolicyForm()
    if form.validate_on_submit():
        policy = _save(form, None)
        if policy is not None:
            flash(_("Draft saved. Check it, then publish it."), "success")
            return redirect(url_for("office.policy_edit", policy_id=policy.id))
    return _render_form(form, None)


@bp.route("/policies/<int:policy_id>", methods=["GET", "POST"])
def policy_edit(policy_id: int) -> Any:
    policy = _policy(policy_id)
    form = PolicyForm()
    if form.is_submitted():
        if current_user.role is not Role.ADMIN:
            abort(403)
        if policy.status is PolicyStatus.DRAFT and form.validate() and _save(form, policy):
            flash(_("Draft saved."), "success")
            return redirect(url_for("office.policy_edit", policy_id=policy.id))
    else:
        form.load(policies.terms_of(policy))
    return _render_form(form, policy)


@bp.post("/policies/<int:policy_id>/<any(publish, close):change>")
@role_required(Role.ADMIN)
def policy_change(policy_id: int, change: str) -> Response:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    policy = _policy(policy_id)
    try:
        if change == "publish":
            policies.publish(current_user, policy)
            message = _("Published: enterprises can see it and apply now.")
        else:
            policies.close(current_user, policy)
            message = _("Closed: no new applications. Those submitted are still decided.")
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
        return redirect(url_for("office.policy_edit", policy_id=policy.id))
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("office.policy_edit", policy_id=policy.id))


@bp.get("/policies/applications")
def policy_applications() -> Any:
    raw = request.args.get("status", "submitted")
    status = (
        PolicyApplicationStatus(raw) if raw in {s.value for s in PolicyApplicationStatus} else None
    )
    found = page_of(
        policies.office_applications_query(current_user, status),
        request.args.get("page", 1, type=int),
    )
    return render_template(
        "office/policy_applications.html",
        rows=found.items,
        found=found,
        status=status.value if status else "all",
        form=DecisionForm(),
        **LABELS,
    )


@bp.post("/policies/applications/<int:application_id>/<any(approve, reject):decision>")
@role_required(Role.ADMIN, Role.OFFICER)
def policy_decide(application_id: int, decision: str) -> Response:
    form = DecisionForm()
    if not form.validate_on_submit():
        flash(" ".join(str(e) for errors in form.errors.values() for e in errors), "error")
        return redirect(url_for("office.policy_applications"))
    application = policies.application_for_office(current_user, application_id)
    if application is None:
        abort(404)
    try:
        if decision == "approve":
            policies.approve(current_user, application, form.amount.data)
            message = _("Approved; the enterprise has been told.")
        else:
            policies.reject(current_user, application, form.reason.data or "")
            message = _("Rejected; the enterprise has been told why.")
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
        return redirect(url_for("office.policy_applications"))
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("office.policy_applications"))
