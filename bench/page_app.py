"""The web app as gunicorn serves it, plus one bare endpoint for the page benchmark's
baseline: ``GET /bench/bare?n=N`` runs one indexed SELECT (N enterprises by primary key)
and renders N table rows, with none of the page's own work (authorization, profiles,
matching, layout). ``gunicorn -c gunicorn.conf.py bench.page_app:app``; never deployed."""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa
from flask import Blueprint, current_app, request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from app.extensions import db
from models import Enterprise

BARE = """<!doctype html><title>bare</title><table>
{% for row in rows %}<tr><td>{{ row.id }}</td><td>{{ row.uscc }}</td><td>{{ row.name }}</td></tr>
{% endfor %}</table>"""

bare = Blueprint("bench_bare", __name__)


@bare.get("/bench/bare")
def bare_rows() -> str:
    n = max(1, min(request.args.get("n", 20, type=int) or 20, 1000))
    rows = db.session.execute(
        sa.select(Enterprise.id, Enterprise.uscc, Enterprise.name)
        .where(Enterprise.id > 0)
        .order_by(Enterprise.id)
        .limit(n)
    ).all()
    # Compiled once per process, as the app's own templates are (render_template_string
    # would compile it on every request and slow the baseline down).
    template = current_app.extensions.get("bench_bare")
    if template is None:
        template = current_app.extensions["bench_bare"] = current_app.jinja_env.from_string(BARE)
    return template.render(rows=rows)


app = create_app()
app.register_blueprint(bare)
