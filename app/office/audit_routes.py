"""The audit trail viewer: filters, pages, and the chain verification (a job, as
`flask audit verify` does it in one pass)."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from app.forms import ConfirmForm
from app.office import bp
from app.services import audit_verify as audit_verify_job
from app.services import audit_viewer
from models import Job, db


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search

    enterprise = StringField(
        _l("Enterprise (USCC or name)"), validators=[Optional(), Length(max=200)]
    )
    actor = StringField(_l("Actor (e-mail or name)"), validators=[Optional(), Length(max=254)])
    action = SelectField(_l("Action"), validators=[Optional()], validate_choice=False)
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])


@bp.get("/audit")
def audit_trail() -> Any:
    form = AuditFilterForm(request.args)
    known = audit_viewer.actions()
    prefixes = sorted({a.split(".")[0] + "." for a in known if "." in a})
    form.action.choices = [
        SelectChoice("", _l("Any action")),
        *(SelectChoice(p, p + "*") for p in prefixes),
        *(SelectChoice(a, a) for a in known),
    ]
    valid = form.validate()
    flt = audit_viewer.AuditFilter(
        enterprise=form.enterprise.data or "",
        actor=form.actor.data or "",
        action=form.action.data or "",
        date_from=form.date_from.data if valid else None,
        date_to=form.date_to.data if valid else None,
    )
    page = audit_viewer.search(current_user, flt, request.args.get("page", 1, type=int))
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "office/audit.html", form=form, result=page, args=args, verify_form=ConfirmForm()
    ), (200 if valid else 422)


@bp.post("/audit/verify")
def audit_verify() -> Any:
    """Start the chain's verification (a job: a province's trail is too long for a request);
    the answer shows its progress, then its report."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    job_id = audit_verify_job.start(current_user).id
    db.session.commit()  # (the embedded runner may already have run it)
    job = db.session.get(Job, job_id)
    if job is None:
        abort(404)
    return _verification(job)


@bp.get("/audit/verify/<int:job_id>")
def audit_verify_progress(job_id: int) -> Any:
    job = db.session.get(Job, job_id)
    if job is None or job.kind != audit_verify_job.VERIFY_JOB:
        abort(404)
    return _verification(job)


def _verification(job: Job) -> Any:
    """The verification's progress or report: the fragment for htmx, else a whole page."""
    partial = request.headers.get("HX-Request")
    template = "office/_audit_verify.html" if partial else "office/audit_verify.html"
    return render_template(template, job=job, report=audit_verify_job.report_of(job))
