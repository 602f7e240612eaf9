"""Public pages: the front page, the language switch and the health check."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app.auth.access import landing_endpoint
from app.auth.redirects import safe_next
from app.extensions import csrf, db
from app.main import bp


@bp.get("/")
def index() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for(landing_endpoint(current_user.org_kind)))
    return render_template("main/index.html")


@bp.get("/language/<code>")
def set_language(code: str) -> Any:
    """Switch the interface language (a cookie) and return to the page the person was on."""
    target = safe_next(request.args.get("next")) or url_for("main.index")
    response = redirect(target)
    if code in current_app.config["LANGUAGES"]:
        response.set_cookie(
            "lang",
            code,
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="Lax",
            secure=current_app.config["SESSION_COOKIE_SECURE"],
        )
    return response


@bp.get("/healthz")
@csrf.exempt
def healthz() -> Any:
    """Liveness and database readiness, for load balancers and operators (JSON)."""
    database: dict[str, Any] = {"dialect": db.engine.dialect.name}
    try:
        db.session.execute(sa.text("SELECT 1"))
        database["ok"] = True
        database["schema_revision"] = _schema_revision()
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        database["ok"] = False
        database["error"] = exc.__class__.__name__
    status = 200 if database["ok"] else 503
    return jsonify(status="ok" if database["ok"] else "unavailable", database=database), status


def _schema_revision() -> dict[str, Any]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    # The migration scripts do not change while the process runs: read their heads once
    # (loading the scripts costs ~25 ms, too much for a probe polled every few seconds).
    heads = current_app.extensions.get("xinyidai_schema_heads")
    if heads is None:
        migrate = current_app.extensions["migrate"].migrate
        script = ScriptDirectory.from_config(migrate.get_config(migrate.directory))
        heads = current_app.extensions["xinyidai_schema_heads"] = set(script.get_heads())
    current = set(MigrationContext.configure(db.session.connection()).get_current_heads())
    return {"current": sorted(current), "head": sorted(heads), "up_to_date": current == heads}
