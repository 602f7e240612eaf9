"""The enterprise's own pages: home, the authorization wizard and consent ledger, data use."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.enterprise import bp
from app.enterprise.forms import ALL_BANKS, GrantForm
from app.extensions import db
from app.forms import ConfirmForm, show_error
from app.services import audit, authorization, collection, enterprises
from app.services.accounts import AccountError, PermissionRefused
from app.services.paging import page_of
from models import Authorization, AuthorizationKind, FetchFrequency, Job, Organization, Purpose
from models.base import utcnow


@bp.get("/")
def home() -> Any:
    enterprise = enterprises.enterprise_of(current_user)
    return render_template(
        "enterprise/home.html",
        enterprise=enterprise,
        industry=enterprises.industry_label(enterprise.industry_code),
        expiring=authorization.expiring_soon(enterprise),
        coverage=collection.coverage(enterprise),
    )


def _own_authorization(public_id: str) -> Authorization:
    enterprise = enterprises.enterprise_of(current_user)
    found = db.session.scalar(
        sa.select(Authorization).where(
            Authorization.public_id == public_id, Authorization.enterprise_id == enterprise.id
        )
    )
    if found is None:
        abort(404)
    return found


@bp.get("/authorizations")
def authorizations() -> Any:
    enterprise = enterprises.enterprise_of(current_user)
    return render_template(
        "enterprise/authorizations.html",
        grants=authorization.ledger(enterprise),
        coverage=collection.coverage(enterprise),
        now=utcnow(),
        expiring=authorization.expiring_soon(enterprise),
        action_form=ConfirmForm(),
        scope_labels=authorization.SCOPE_LABELS,
    )


def _grant_request(form: GrantForm) -> authorization.GrantRequest:
    kind = AuthorizationKind(form.kind.data)
    sharing = kind is AuthorizationKind.SHARING
    grantee = form.grantee.data if sharing else None
    return authorization.GrantRequest(
        kind=kind,
        scopes=tuple(form.scopes.data or ()),
        grantee_org_id=int(grantee)
        if grantee and grantee != ALL_BANKS and grantee.isdigit()
        else None,
        all_banks=sharing and grantee == ALL_BANKS,
        include_records=sharing and bool(form.include_records.data),
        data_months=int(form.data_months.data or 24),
        valid_days=int(form.valid_days.data or 365),
        data_life_days=int(form.data_life_days.data or 365),
        fetch_frequency=FetchFrequency(form.fetch_frequency.data or "monthly"),
        purpose=Purpose(form.purpose.data) if sharing and form.purpose.data else Purpose.FINANCING,
    )


@bp.route("/authorizations/new", methods=["GET", "POST"])
def new_authorization() -> Any:
    enterprise = enterprises.enterprise_of(current_user)
    form = GrantForm()
    form.set_banks(authorization.banks())
    status = 200
    if form.validate_on_submit():
        try:
            grant = authorization.grant(current_user, enterprise, _grant_request(form))
        except (AccountError, PermissionRefused) as exc:
            db.session.rollback()
            status = 403 if isinstance(exc, PermissionRefused) else 422
            if not show_error(form, exc.field, exc.message):
                flash(str(exc.message), "error")
        else:
            job = None
            if grant.kind is AuthorizationKind.COLLECTION:
                job = collection.start_collection(grant.id, current_user)
            db.session.commit()
            flash(_("Authorization granted. You can revoke it at any time."), "success")
            if job is not None:
                return redirect(url_for("enterprise.authorizations", job=job.id))
            return redirect(url_for("enterprise.authorizations"))
    return render_template(
        "enterprise/authorization_new.html",
        form=form,
        consent=authorization.consent_text(),
        summary=_summary(form),
    ), (422 if form.errors else status)


def _summary(form: GrantForm) -> dict[str, Any]:
    """The wizard's plain-words summary: who will see what, for what, until when."""
    request_ = _grant_request(form)
    bank_name = None
    if request_.grantee_org_id is not None:
        bank = db.session.get(Organization, request_.grantee_org_id)
        bank_name = bank.name if bank else None
    return {
        "kind": request_.kind.value,
        "scopes": [
            str(authorization.SCOPE_LABELS[s])
            for s in request_.scopes
            if s in authorization.SCOPE_LABELS
        ],
        "all_banks": request_.all_banks,
        "bank": bank_name,
        "include_records": request_.include_records,
        "data_months": request_.data_months,
        "valid_days": request_.valid_days,
        "data_life_days": request_.data_life_days,
        "monthly": request_.fetch_frequency is FetchFrequency.MONTHLY,
    }


@bp.post("/authorizations/preview")
def preview_authorization() -> Any:
    """htmx: the summary sentence, re-rendered as the person changes the wizard."""
    form = GrantForm()
    form.set_banks(authorization.banks())
    return render_template("enterprise/_authorization_summary.html", summary=_summary(form))


def _change(public_id: str, change: str) -> Response:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    grant = _own_authorization(public_id)
    try:
        if change == "revoke":
            authorization.revoke(current_user, grant)
            message = _("Authorization revoked. Collection and sharing have stopped.")
        else:
            authorization.set_paused(current_user, grant, change == "pause")
            message = (
                _("Authorization paused.") if change == "pause" else _("Authorization resumed.")
            )
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        flash(message, "success")
    return redirect(url_for("enterprise.authorizations"))


@bp.post("/authorizations/<public_id>/revoke")
def revoke_authorization(public_id: str) -> Response:
    return _change(public_id, "revoke")


@bp.post("/authorizations/<public_id>/pause")
def pause_authorization(public_id: str) -> Response:
    return _change(public_id, "pause")


@bp.post("/authorizations/<public_id>/resume")
def resume_authorization(public_id: str) -> Response:
    return _change(public_id, "resume")


@bp.get("/authorizations/<public_id>/receipt.json")
def authorization_receipt(public_id: str) -> Response:
    body = authorization.receipt(_own_authorization(public_id))
    response = Response(
        json.dumps(body, ensure_ascii=False, indent=2, sort_keys=True),
        mimetype="application/json",
    )
    response.headers["Content-Disposition"] = f'attachment; filename="consent-{public_id}.json"'
    return response


DATA_USE_PER_PAGE = 100


@bp.get("/data-use")
def data_use() -> Any:
    enterprise = enterprises.enterprise_of(current_user)
    # Every use, a page at a time: none is out of the enterprise's sight, however many.
    found = page_of(
        audit.enterprise_events_query(enterprise.id),
        request.args.get("page", 1, type=int),
        DATA_USE_PER_PAGE,
    )
    events = found.items
    org_ids = {e.actor_org_id for e in events if e.actor_org_id}
    names = (
        dict(
            db.session.execute(
                sa.select(Organization.id, Organization.name).where(Organization.id.in_(org_ids))
            ).all()
        )
        if org_ids
        else {}
    )
    return render_template(
        "enterprise/data_use.html",
        events=events,
        found=found,
        org_names=names,
        own_org_id=enterprise.organization_id,
        scope_labels=authorization.SCOPE_LABELS,
    )


@bp.get("/jobs/<int:job_id>")
def job_progress(job_id: int) -> Any:
    """htmx: a collection job's progress, polled every second until it finishes."""
    enterprise = enterprises.enterprise_of(current_user)
    job = db.session.get(Job, job_id)
    if job is None or job.enterprise_id != enterprise.id:
        abort(404)
    return render_template(
        "enterprise/_job_progress.html",
        job=job,
        scope_labels=authorization.SCOPE_LABELS,
        step_message=collection.step_message,
    )
