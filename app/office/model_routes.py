"""Model governance for the office: versions, reports, champion/challenger, drift, rescoring.

Every office user may look; only the office's administrators approve, retire and rescore
(checked here and again in the services).
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.auth.access import role_required
from app.extensions import db
from app.forms import ConfirmForm
from app.office import bp
from app.security import reauth_required
from app.services import model_monitoring, model_registry
from app.services.accounts import PermissionRefused
from app.services.model_registry import RegistryError
from ml.validation import report_html
from models import Job, ModelStatus, ModelVersion, Role


def _version(version_id: int) -> ModelVersion:
    version = db.session.get(ModelVersion, version_id)
    if version is None:
        abort(404)
    return version


@bp.get("/models")
def model_list() -> Any:
    return render_template(
        "office/models.html",
        versions=model_registry.versions(),
        serving=model_registry.serving_version(),
        job=model_monitoring.latest_rescore(),
        confirm=ConfirmForm(),
    )


@bp.get("/models/<int:version_id>")
def model_detail(version_id: int) -> Any:
    version = _version(version_id)
    return render_template(
        "office/models_detail.html",
        version=version,
        report=version.validation_report or {},
        confirm=ConfirmForm(),
    )


@bp.get("/models/<int:version_id>/report.html")
def model_report_html(version_id: int) -> Any:
    """The ``ml`` library's own HTML validation report (every value escaped by it)."""
    version = _version(version_id)
    if not version.validation_report:
        abort(404)
    title = f"Validation report — {version.label}"
    response = Response(report_html(version.validation_report, title), mimetype="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def _change(version_id: int, action: str) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    version = _version(version_id)
    try:
        if action == "approve":
            job = model_monitoring.approve_and_rescore(version, current_user)
            message = (
                _("%(label)s is approved; every profile is being rescored.", label=version.label)
                if job is not None
                else _(
                    "%(label)s is approved; profiles are scored by the preferred kind's approved "
                    "version.",
                    label=version.label,
                )
            )
        else:
            model_registry.retire(version, current_user)
            message = _("%(label)s is retired.", label=version.label)
    except (RegistryError, PermissionRefused) as exc:
        db.session.rollback()
        flash(str(getattr(exc, "message", exc)), "error")
    else:
        db.session.commit()
        flash(message, "success")
    return redirect(url_for("office.model_list"))


@bp.post("/models/<int:version_id>/approve")
@role_required(Role.ADMIN)
@reauth_required()
def model_approve(version_id: int) -> Any:
    return _change(version_id, "approve")


@bp.post("/models/<int:version_id>/retire")
@role_required(Role.ADMIN)
@reauth_required()
def model_retire(version_id: int) -> Any:
    return _change(version_id, "retire")


@bp.post("/models/rescore")
@role_required(Role.ADMIN)
def model_rescore() -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        job = model_monitoring.start_rescore(current_user)
    except RegistryError:
        db.session.rollback()
        flash(_("No model version is approved: approve one before rescoring."), "error")
        return redirect(url_for("office.model_list"))
    job_id = job.id
    db.session.commit()
    if request.headers.get("HX-Request"):
        return render_template("office/_rescore_progress.html", job=db.session.get(Job, job_id))
    return redirect(url_for("office.model_list"))


@bp.get("/models/jobs/<int:job_id>")
def model_job(job_id: int) -> Any:
    job = db.session.get(Job, job_id)
    if job is None or job.kind != model_monitoring.RESCORE_JOB:
        abort(404)
    return render_template("office/_rescore_progress.html", job=job)


@bp.get("/models/compare")
def model_compare() -> Any:
    versions = model_registry.versions()
    holdouts = model_monitoring.holdouts()
    serving = model_registry.serving_version()
    champion_id = request.args.get("champion", type=int) or (serving.id if serving else None)
    challenger_id = request.args.get("challenger", type=int) or next(
        (v.id for v in versions if v.status is ModelStatus.CANDIDATE), None
    )
    holdout_key = request.args.get("holdout") or (holdouts[0].key if holdouts else "")
    comparison = error = None
    if champion_id and challenger_id and holdout_key:
        champion, challenger = (
            db.session.get(ModelVersion, champion_id),
            db.session.get(ModelVersion, challenger_id),
        )
        if champion is None or challenger is None:
            abort(404)
        try:
            comparison = model_monitoring.compare(champion, challenger, holdout_key)
        except RegistryError as exc:
            error = str(exc)
    return render_template(
        "office/models_compare.html",
        versions=versions,
        holdouts=holdouts,
        champion_id=champion_id,
        challenger_id=challenger_id,
        holdout_key=holdout_key,
        comparison=comparison,
        pairs=model_monitoring.calibration_pairs(comparison) if comparison else [],
        error=error,
    ), (422 if error else 200)


@bp.get("/models/drift")
def model_drift() -> Any:
    version_id = request.args.get("version", type=int)
    version = _version(version_id) if version_id else None
    try:
        report = model_monitoring.population_drift(version)
        error = None
    except RegistryError as exc:
        report, error = None, str(exc)
    return render_template(
        "office/models_drift.html",
        report=report,
        versions=model_registry.versions(),
        error=error,
    )
