"""The office's objection queue (异议) and credit-repair (信用修复) applications."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.extensions import db
from app.forms import ConfirmForm
from app.office import bp
from app.services import credit_repair, objections
from app.services.accounts import AccountError, PermissionRefused
from app.services.ingestion import SOURCE_LABELS
from models import CreditRepair, Enterprise, Objection, Role
from models.records import RECORD_MODELS, PublicCreditRecord


def _objection(objection_id: int) -> Objection:
    objection = db.session.get(Objection, objection_id)
    if objection is None:
        abort(404)
    return objection


def _repair(repair_id: int) -> CreditRepair:
    repair = db.session.get(CreditRepair, repair_id)
    if repair is None:
        abort(404)
    return repair


def _record_of(objection: Objection) -> Any:
    if objection.record_table is None:
        return None
    return db.session.get(RECORD_MODELS[objection.record_table], objection.record_id)


def _describe(objection: Objection, records: dict[tuple[str, int], Any] | None = None) -> str:
    """What the objection is about; ``records`` (from ``objections.records_of``) saves a
    read per objection on a list."""
    if objection.record_table is None:
        return _("Credit profile")
    if records is not None and objection.record_id is not None:
        record = records.get((objection.record_table, objection.record_id))
    else:
        record = _record_of(objection)
    return objections.describe_record(objection.record_table, record)


@bp.get("/objections")
def objection_queue() -> Any:
    queue, decided = objections.queue(), objections.recently_decided()
    records = objections.records_of([*(item.objection for item in queue), *decided])
    return render_template(
        "office/objections.html",
        queue=queue,
        decided=decided,
        repairs=credit_repair.queue(),
        decided_repairs=credit_repair.recently_decided(),
        labels=objections.STATUS_LABELS,
        repair_labels=credit_repair.STATUS_LABELS,
        describe=lambda objection: _describe(objection, records),
    )


def _render_objection(objection: Objection, errors: dict[str, str], status: int = 200) -> Any:
    record = _record_of(objection)
    latest = (
        objections.latest_version(objection.record_table, record)
        if record is not None and objection.record_table
        else None
    )
    table = objection.record_table
    return render_template(
        "office/objection.html",
        objection=objection,
        item=objections.status_of(objection),
        what=_describe(objection),
        record=record,
        latest=latest,
        columns=objections.editable_columns(table) if table else [],
        enterprise=db.session.get(Enterprise, objection.enterprise_id),
        labels=objections.STATUS_LABELS,
        source_label=SOURCE_LABELS.get(table or "", ""),
        errors=errors,
        form=ConfirmForm(),
        can_decide=current_user.role is not Role.VIEWER,
        values=request.form,
    ), status


@bp.get("/objections/<int:objection_id>")
def objection_review(objection_id: int) -> Any:
    return _render_objection(_objection(objection_id), {})


@bp.post("/objections/<int:objection_id>/flag")
def objection_flag(objection_id: int) -> Any:
    objection = _objection(objection_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        objections.flag(
            current_user, objection, needs_other_unit=request.form.get("needs_other_unit") == "y"
        )
    except PermissionRefused:
        abort(403)
    except AccountError as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        flash(_("Marked as under objection."), "success")
    return redirect(url_for("office.objection_review", objection_id=objection_id))


@bp.post("/objections/<int:objection_id>/decide")
def objection_decide(objection_id: int) -> Any:
    objection = _objection(objection_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    uphold = request.form.get("decision") == "uphold"
    columns = objections.editable_columns(objection.record_table) if objection.record_table else []
    corrections = {c: request.form.get(f"value_{c}", "") for c in columns}
    try:
        objections.decide(
            current_user,
            objection,
            uphold=uphold,
            reason=request.form.get("reason", ""),
            corrections=corrections,
        )
    except PermissionRefused:
        abort(403)
    except AccountError as exc:
        db.session.rollback()
        return _render_objection(
            _objection(objection_id), {exc.field or "form": str(exc.message)}, 422
        )
    db.session.commit()
    flash(
        _("Objection upheld; the record was corrected.") if uphold else _("Objection rejected."),
        "success",
    )
    return redirect(url_for("office.objection_review", objection_id=objection_id))


def _render_repair(repair: CreditRepair, errors: dict[str, str], status: int = 200) -> Any:
    return render_template(
        "office/repair.html",
        repair=repair,
        record=db.session.get(PublicCreditRecord, repair.record_id),
        enterprise=db.session.get(Enterprise, repair.enterprise_id),
        labels=credit_repair.STATUS_LABELS,
        errors=errors,
        form=ConfirmForm(),
        can_decide=current_user.role is not Role.VIEWER,
        values=request.form,
    ), status


@bp.get("/repairs/<int:repair_id>")
def repair_review(repair_id: int) -> Any:
    return _render_repair(_repair(repair_id), {})


@bp.post("/repairs/<int:repair_id>/decide")
def repair_decide(repair_id: int) -> Any:
    repair = _repair(repair_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    approve = request.form.get("decision") == "approve"
    repaired_on = None
    raw = request.form.get("repaired_on", "").strip()
    if approve and raw:
        try:
            repaired_on = dt.date.fromisoformat(raw)
        except ValueError:
            return _render_repair(repair, {"repaired_on": _("Expected a date as YYYY-MM-DD.")}, 422)
    try:
        credit_repair.decide(
            current_user,
            repair,
            approve=approve,
            reason=request.form.get("reason", ""),
            repaired_on=repaired_on,
        )
    except PermissionRefused:
        abort(403)
    except AccountError as exc:
        db.session.rollback()
        return _render_repair(_repair(repair_id), {exc.field or "form": str(exc.message)}, 422)
    db.session.commit()
    flash(
        _("Repair approved; the record no longer counts.") if approve else _("Repair rejected."),
        "success",
    )
    return redirect(url_for("office.repair_review", repair_id=repair_id))


@bp.get("/evidence/<int:evidence_id>")
def evidence_download(evidence_id: int) -> Response:
    try:
        evidence, path = objections.evidence_for(current_user, evidence_id)
    except LookupError:
        abort(404)
    return send_file(
        path, mimetype=evidence.content_type, as_attachment=True, download_name=evidence.filename
    )
