"""The bank's pages."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_login import current_user

from app.bank import bp
from app.services import organizations


@bp.get("/")
def home() -> Any:
    return render_template(
        "bank/home.html",
        organization=current_user.organization,
        colleagues=organizations.users_of(current_user, current_user.organization),
    )
