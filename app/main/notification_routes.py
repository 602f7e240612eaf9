"""Notifications for every logged-in person: the list, opening one, marking all read."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.extensions import db
from app.forms import ConfirmForm
from app.main import bp
from app.services import notifications
from app.services.accounts import PermissionRefused
from models import Notification, OrgKind

_TARGETS = {
    OrgKind.ENTERPRISE: ("enterprise.application_detail", "enterprise.need_list"),
    OrgKind.BANK: ("bank.application_detail", "bank.need_list"),
    OrgKind.OFFICE: ("office.overdue_applications", "office.home"),
}


def target_of(notification: Notification, kind: OrgKind) -> str:
    """Where the notification leads the reader, by the side they are on."""
    application_view, need_view = _TARGETS[kind]
    ref = notification.params.get("ref")
    if notification.kind.startswith("objection."):
        if kind is OrgKind.ENTERPRISE and ref:
            return url_for("enterprise.objection_detail", objection_id=ref)
        if kind is OrgKind.OFFICE:
            return url_for("office.objection_queue")
    if notification.kind.startswith("repair."):
        if kind is OrgKind.ENTERPRISE and ref:
            return url_for("enterprise.repair_detail", repair_id=ref)
        if kind is OrgKind.OFFICE:
            return url_for("office.objection_queue")
    if notification.kind.startswith("claim."):
        if kind is OrgKind.BANK and ref:
            return url_for("bank.claim_detail", claim_id=ref)
        if kind is OrgKind.OFFICE and ref:
            return url_for("office.pool_claim", claim_id=ref)
    if notification.kind.startswith("policy."):
        if kind is OrgKind.ENTERPRISE:
            return url_for("enterprise.policy_application_list")
        if kind is OrgKind.OFFICE:
            return url_for("office.policy_applications")
    if notification.application_id is not None:
        if kind is OrgKind.OFFICE:
            return url_for(application_view)
        return url_for(application_view, application_id=notification.application_id)
    if notification.need_id is not None:
        return url_for(need_view)
    return url_for("main.notification_list")


@bp.get("/notifications")
@login_required
def notification_list() -> Any:
    return render_template(
        "main/notifications.html",
        rows=notifications.for_user(current_user),
        form=ConfirmForm(),
    )


@bp.get("/notifications/<int:notification_id>")
@login_required
def notification_open(notification_id: int) -> Response:
    """Mark it read and go to what it is about."""
    try:
        notification = notifications.own(current_user, notification_id)
    except PermissionRefused:
        abort(404)
    notifications.mark_read(current_user, notification)
    db.session.commit()
    return redirect(target_of(notification, current_user.org_kind))


@bp.post("/notifications/read")
@login_required
def notification_read_all() -> Response:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    notifications.mark_all_read(current_user)
    db.session.commit()
    return redirect(url_for("main.notification_list"))
