"""The enterprise's records, objections (异议) and credit-repair (信用修复) applications.

Also registers two template globals used wherever records or profiles are shown (the
enterprise's profile, the bank's enterprise view): ``objection_marks(enterprise_id)`` and
``public_credit_shown(enterprise_id)``.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.enterprise import bp
from app.extensions import db
from app.forms import ConfirmForm
from app.services import credit_repair, enterprises, objections, profiles
from app.services.accounts import AccountError, PermissionRefused
from app.services.ingestion import SOURCE_LABELS
from app.services.objections import MAX_EVIDENCE_BYTES, Upload
from ml import schema
from models.records import RECORD_MODELS

bp.add_app_template_global(objections.marks_for, "objection_marks")
bp.add_app_template_global(credit_repair.shown_to_banks, "public_credit_shown")


def uploads_from_request() -> list[Upload]:
    """The ``evidence`` files, each read up to the limit + 1 byte (so oversize is seen)."""
    return [
        Upload(f.filename or "", f.stream.read(MAX_EVIDENCE_BYTES + 1))
        for f in request.files.getlist("evidence")
        if f and (f.filename or "")
    ]


def _record_or_404(table: str | None, record_id: int | None) -> Any:
    enterprise = enterprises.enterprise_of(current_user)
    if table is None or record_id is None:
        return None
    try:
        return objections.own_record(enterprise, table, record_id)
    except LookupError:
        abort(404)


@bp.get("/records")
def records() -> Any:
    enterprise = enterprises.enterprise_of(current_user)
    tables = {t: objections.latest_records(enterprise.id, t) for t in RECORD_MODELS}
    return render_template(
        "enterprise/records.html",
        tables=tables,
        labels=SOURCE_LABELS,
        key_columns=objections.key_columns,
        columns={t: objections.editable_columns(t) for t in RECORD_MODELS},
        marks=objections.marks_for(enterprise.id),
        public_credit=schema.PUBLIC_CREDIT,
        form=ConfirmForm(),
    )


@bp.route("/objections/new", methods=["GET", "POST"])
def objection_new() -> Any:
    table = request.values.get("table") or None
    record_id = request.values.get("record", type=int)
    record = _record_or_404(table, record_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not ConfirmForm().validate_on_submit():
            abort(400)
        try:
            objection = objections.file(
                current_user,
                text=request.form.get("text", ""),
                table=table if record is not None else None,
                record_id=record_id if record is not None else None,
                uploads=uploads_from_request(),
            )
        except LookupError:
            abort(404)
        except (AccountError, PermissionRefused) as exc:
            db.session.rollback()
            errors[exc.field or "form"] = str(exc.message)
        else:
            db.session.commit()
            flash(_("Your objection has been filed."), "success")
            return redirect(url_for("enterprise.objection_detail", objection_id=objection.id))
    enterprise = enterprises.enterprise_of(current_user)
    return render_template(
        "enterprise/objection_new.html",
        table=table if record is not None else None,
        record=record,
        label=objections.describe_record(table, record) if record is not None else "",
        profile=profiles.latest_profile(enterprise),
        errors=errors,
        text=request.form.get("text", ""),
        form=ConfirmForm(),
    ), (422 if errors else 200)


@bp.get("/objections")
def objection_list() -> Any:
    items = [objections.status_of(o) for o in objections.for_enterprise(current_user)]
    return render_template(
        "enterprise/objections.html",
        items=items,
        repairs=credit_repair.for_enterprise(current_user),
        labels=objections.STATUS_LABELS,
        repair_labels=credit_repair.STATUS_LABELS,
        describe=_describe,
    )


def _describe(objection: Any) -> str:
    if objection.record_table is None:
        return _("Credit profile")
    record = db.session.get(RECORD_MODELS[objection.record_table], objection.record_id)
    return objections.describe_record(objection.record_table, record)


@bp.get("/objections/<int:objection_id>")
def objection_detail(objection_id: int) -> Any:
    try:
        objection = objections.own_objection(current_user, objection_id)
    except LookupError:
        abort(404)
    return render_template(
        "enterprise/objection.html",
        item=objections.status_of(objection),
        objection=objection,
        what=_describe(objection),
        labels=objections.STATUS_LABELS,
    )


@bp.route("/repairs/new", methods=["GET", "POST"])
def repair_new() -> Any:
    record_id = request.values.get("record", type=int)
    record = _record_or_404(schema.PUBLIC_CREDIT, record_id)
    if record is None:
        abort(404)
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not ConfirmForm().validate_on_submit():
            abort(400)
        try:
            repair = credit_repair.apply(
                current_user,
                record.id,
                text=request.form.get("text", ""),
                uploads=uploads_from_request(),
            )
        except (AccountError, PermissionRefused) as exc:
            db.session.rollback()
            errors[exc.field or "form"] = str(exc.message)
        else:
            db.session.commit()
            flash(_("Your credit-repair application has been sent."), "success")
            return redirect(url_for("enterprise.repair_detail", repair_id=repair.id))
    return render_template(
        "enterprise/repair_new.html",
        record=record,
        label=objections.describe_record(schema.PUBLIC_CREDIT, record),
        errors=errors,
        text=request.form.get("text", ""),
        form=ConfirmForm(),
    ), (422 if errors else 200)


@bp.get("/repairs/<int:repair_id>")
def repair_detail(repair_id: int) -> Any:
    try:
        repair = credit_repair.own_repair(current_user, repair_id)
    except LookupError:
        abort(404)
    return render_template(
        "enterprise/repair.html", repair=repair, labels=credit_repair.STATUS_LABELS
    )


@bp.get("/evidence/<int:evidence_id>")
def evidence_download(evidence_id: int) -> Response:
    try:
        evidence, path = objections.evidence_for(current_user, evidence_id)
    except LookupError:
        abort(404)
    current_app.logger.debug("evidence %s downloaded", evidence.id)
    return send_file(
        path, mimetype=evidence.content_type, as_attachment=True, download_name=evidence.filename
    )
