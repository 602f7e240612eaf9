"""The enterprise's own pages."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_login import current_user

from app.enterprise import bp
from app.services import enterprises


@bp.get("/")
def home() -> Any:
    enterprise = enterprises.enterprise_of(current_user)
    return render_template(
        "enterprise/home.html",
        enterprise=enterprise,
        industry=enterprises.industry_label(enterprise.industry_code),
    )
