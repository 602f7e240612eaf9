"""The office's view of the loan journey: applications banks have not answered in time."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from app.office import bp
from app.services import applications
from app.services.paging import page_of
from models.base import utcnow


@bp.get("/applications/overdue")
def overdue_applications() -> Any:
    now = utcnow()
    found = page_of(applications.overdue_query(now), request.args.get("page", 1, type=int))
    rows = found.items
    return render_template(
        "office/overdue.html",
        rows=rows,
        found=found,
        late={a.id: applications.working_days_late(a, now) for a in rows},
        labels=applications.STATUS_LABELS,
    )
