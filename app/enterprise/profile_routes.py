"""The enterprise's credit profile, its printable report, the public report check and the
``flask models`` commands.

``/verify/<code>`` is public (a bank checks a printed report there), so it lives on its own
small blueprint; so do the ``models`` commands. Both are registered on the app when the
enterprise blueprint is (``record_once``), which keeps ``create_app`` unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.blueprints import BlueprintSetupState
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.enterprise import bp
from app.extensions import db, limiter
from app.forms import ConfirmForm
from app.services import enterprises, model_registry, profiles
from app.services.model_registry import RegistryError
from models import CreditProfile, Enterprise

verify_bp = Blueprint("verify", __name__)
models_bp = Blueprint("models", __name__, cli_group="models")


@bp.record_once
def _register_companions(state: BlueprintSetupState) -> None:
    state.app.register_blueprint(verify_bp)
    state.app.register_blueprint(models_bp)


def _zh() -> bool:
    return str(get_locale()).startswith("zh")


def _own_profile(enterprise: Enterprise, profile_id: int | None) -> CreditProfile | None:
    """The latest snapshot, or the numbered one — 404 unless it is this enterprise's."""
    if profile_id is None:
        return profiles.latest_profile(enterprise)
    profile = db.session.get(CreditProfile, profile_id)
    if profile is None or profile.enterprise_id != enterprise.id:
        abort(404)
    return profile


def _sparkline(points: list[float], width: int = 240, height: int = 48) -> str:
    """SVG polyline coordinates of ``points`` (oldest first), scaled into the box."""
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / (len(points) - 1)
    return " ".join(
        f"{i * step:.1f},{height - 4 - (p - low) / span * (height - 8):.1f}"
        for i, p in enumerate(points)
    )


def _page_context(enterprise: Enterprise, profile: CreditProfile | None) -> dict[str, Any]:
    history = profiles.history(enterprise)
    scores = [float(p.score) for p in reversed(history) if p.score is not None]
    reasons = profile.reasons if profile else []
    return {
        "enterprise": enterprise,
        "profile": profile,
        "is_latest": profile is not None and history and history[0].id == profile.id,
        "history": history,
        "sparkline": _sparkline(scores),
        "against": [r for r in reasons if r.get("direction") == "against"][:4],
        "in_favour": [r for r in reasons if r.get("direction") == "for"][:1],
        "grade_label": profiles.grade_label,
        "serving": model_registry.serving_version(),
        "zh": _zh(),
        "form": ConfirmForm(),
    }


@bp.get("/profile")
@bp.get("/profile/<int:profile_id>")
def profile(profile_id: int | None = None) -> Any:
    enterprise = enterprises.enterprise_of(current_user)
    return render_template(
        "enterprise/profile.html", **_page_context(enterprise, _own_profile(enterprise, profile_id))
    )


@bp.post("/profile/recompute")
def recompute_profile() -> Response:
    enterprise = enterprises.enterprise_of(current_user)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        profiles.compute_profile(enterprise)
    except RegistryError:
        db.session.rollback()
        flash(_("The approved risk model cannot be loaded; the office has been told."), "error")
        return redirect(url_for("enterprise.profile"))
    db.session.commit()
    flash(_("Your credit profile has been recomputed."), "success")
    return redirect(url_for("enterprise.profile"))


@bp.get("/profile/report")
@bp.get("/profile/<int:profile_id>/report")
def profile_report(profile_id: int | None = None) -> Any:
    enterprise = enterprises.enterprise_of(current_user)
    profile = _own_profile(enterprise, profile_id)
    if profile is None:
        flash(_("Compute your credit profile first."), "info")
        return redirect(url_for("enterprise.profile"))
    code = profiles.verification_code(profile)
    return render_template(
        "enterprise/profile_report.html",
        **_page_context(enterprise, profile),
        code=code,
        verify_url=url_for("verify.check", code=code, _external=True),
    )


@verify_bp.get("/verify/<code>")
@limiter.limit("30 per minute")
def check(code: str) -> Any:
    found = profiles.verify_code(code)
    if found is None:
        return render_template("enterprise/profile_verify.html", found=None, code=code), 404
    profile, enterprise = found
    return render_template(
        "enterprise/profile_verify.html",
        found=profile,
        enterprise=enterprise,
        code=code,
        grade_label=profiles.grade_label,
        zh=_zh(),
    )


# ---------------------------------------------------------------------------------------------
# flask models register DIR [--approve] | flask models list
# ---------------------------------------------------------------------------------------------
@models_bp.cli.command("register")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--approve", is_flag=True, help="Approve it at once (retires the previous one).")
def register_command(directory: Path, approve: bool) -> None:
    """Register a trained model directory (ml train-records output) as a new version."""
    try:
        version = model_registry.register(directory, None)
        if approve:
            model_registry.approve(version, None)
    except RegistryError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    auc = version.training_summary.get("auc")
    click.echo(
        f"registered version {version.id}: {version.kind.value} {version.content_hash[:12]} "
        f"auc={'n/a' if auc is None else f'{float(auc):.3f}'} status={version.status.value}"
    )


@models_bp.cli.command("list")
def list_command() -> None:
    """Every model version, newest first."""
    rows = model_registry.versions()
    if not rows:
        click.echo("no model versions registered")
        return
    for v in rows:
        auc = v.training_summary.get("auc")
        auc_text = "n/a" if auc is None or math.isnan(float(auc)) else f"{float(auc):.3f}"
        click.echo(
            f"{v.id:>4}  {v.kind.value:<9} {v.status.value:<9} {v.content_hash[:12]}  "
            f"auc={auc_text}  created {v.created_at:%Y-%m-%d %H:%M}"
            + (f"  approved {v.approved_at:%Y-%m-%d %H:%M}" if v.approved_at else "")
        )
