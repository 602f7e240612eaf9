"""The office's view of the loan journey: applications banks have not answered in time."""

from __future__ import annotations

from typing import Any

from flask import render_template

from app.office import bp
from app.services import applications
from models.base import utcnow


@bp.get("/applications/overdue")
def overdue_applications() -> Any:
    now = utcnow()
    rows = applications.overdue(now)
    return render_template(
        "office/overdue.html",
        rows=rows,
        late={a.id: applications.working_days_late(a, now) for a in rows},
        labels=applications.STATUS_LABELS,
    )
