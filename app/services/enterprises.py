"""Reading an enterprise's registration."""

from __future__ import annotations

import sqlalchemy as sa
from flask_babel import get_locale

from models import Enterprise, User, db
from models.codes import industry_divisions


def enterprise_of(user: User) -> Enterprise:
    """The enterprise the user acts for. Raises ``LookupError`` for non-enterprise users."""
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == user.organization_id)
    )
    if enterprise is None:
        raise LookupError(f"user {user.id} does not act for an enterprise")
    return enterprise


def industry_label(code: str) -> str:
    """ "C13 农副食品加工业" in Chinese; the section name in English (divisions are zh only)."""
    division = industry_divisions().get(code)
    if division is None:
        return code
    if str(get_locale()).startswith("zh"):
        return f"{code} {division.section_zh} · {division.name_zh}"
    return f"{code} {division.section_en} · {division.name_zh}"
