"""Where a bank page's time goes: CPU per request, in process, split into its parts.

``python bench/page_costs.py [--enterprises 60] [--rounds 6]`` seeds the demo into a fresh
PostgreSQL schema (as ``bench/run.py`` does for ``page_rps``), logs the demo bank in with
Flask's test client and measures the process CPU time per request (the best of ``--rounds``
rounds of 150 requests, so a busy machine inflates it less) of:

========================= ===================================================================
``empty``                 a logged-in request answering a short string: the session lookup,
                          the hooks, the test client — what every request pays
``bare``                  ``/bench/bare``, the ``page_rps`` baseline (one SELECT, 50 rows)
``layout``                ``base.html`` with no content (context processors included: the
                          unread count, the translations)
``prospects_data``        ``bank_views.prospects`` alone (products, the prospect SELECT,
                          matching, sorting), answering the count: what the list page pays
                          when it matches again (after a change, see ``prospect_page``)
``prospects``             the prospect list page, its bank's matched list kept (measured
                          after the warm-up, as a bank browsing its list sees it)
``profile_data``          ``bank_views.show_profile`` rendering nothing (its reads, the use
                          count, the audit events, the commit)
``profile``               the profile pages of the first 8 prospects
========================= ===================================================================

Each line is ``{"name", "value", "unit", "baseline", "ratio", "n"}`` with the bare endpoint
rendering the prospect list's rows as baseline (``ratio`` = bare / value, as the prospect
list's ``page_rps`` ratio would be if requests cost only this process's CPU; ``page_rps``
pairs each profile with the bare endpoint rendering that profile's own table rows, fewer
than 50 on a profile without shared records, more on one with). The page benchmark proper
(gunicorn, 16 clients) adds the database's and the clients' share; this splits the
application's.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import DEMO_PASSWORD, bench_schema, emit, flask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enterprises", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    with bench_schema() as env:
        flask(env, "db", "upgrade")
        flask(env, "seed-demo", "--enterprises", str(args.enterprises))
        os.environ.update(env)
        measure(args.enterprises, args.rounds)


def measure(enterprises: int, rounds: int) -> None:
    from flask import Blueprint, current_app
    from flask.templating import _render
    from flask_login import current_user

    from app.extensions import db
    from app.services import bank_views
    from bench.page_app import app

    probes = Blueprint("bench_costs", __name__)

    @probes.get("/bench/costs/empty")
    def empty() -> str:
        return "ok"

    @probes.get("/bench/costs/layout")
    def layout() -> str:
        template = current_app.extensions.get("bench_layout")
        if template is None:
            template = current_app.jinja_env.from_string('{% extends "base.html" %}')
            current_app.extensions["bench_layout"] = template
        return _render(current_app, template, {})

    @probes.get("/bench/costs/prospects")
    def prospects_data() -> str:
        return str(len(bank_views.prospects(current_user)))

    @probes.get("/bench/costs/profile/<int:enterprise_id>")
    def profile_data(enterprise_id: int) -> str:
        shown = bank_views.show_profile(current_user, enterprise_id, lambda view: "ok")
        db.session.commit()
        return shown

    app.register_blueprint(probes)
    client = app.test_client()
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/auth/login").text)
    assert token, "no CSRF token on the login page"
    login = {"email": "bank@demo.test", "password": DEMO_PASSWORD, "csrf_token": token.group(1)}
    assert client.post("/auth/login", data=login).status_code == 302
    listing = client.get("/bank/prospects").text
    ids = list(dict.fromkeys(re.findall(r"/bank/enterprises/(\d+)", listing)))
    assert ids, "the demo bank sees no prospect"
    paths: dict[str, list[str]] = {
        "empty": ["/bench/costs/empty"],
        "bare": [f"/bench/bare?n={len(ids)}"],
        "layout": ["/bench/costs/layout"],
        "prospects_data": ["/bench/costs/prospects"],
        "prospects": ["/bank/prospects"],
        "profile_data": [f"/bench/costs/profile/{i}" for i in ids[:8]],
        "profile": [f"/bank/enterprises/{i}" for i in ids[:8]],
    }
    for path in (p for group in paths.values() for p in group):
        for _ in range(5):  # templates compiled, statements cached, connections open
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)

    def cpu_ms(group: list[str], n: int = 150) -> float:
        started = time.process_time()
        for i in range(n):
            client.get(group[i % len(group)])
        return (time.process_time() - started) / n * 1000

    best: dict[str, float] = {}
    for _ in range(rounds):  # interleaved, so a slow stretch of the machine hits every part
        for name, group in paths.items():
            best[name] = min(best.get(name, float("inf")), cpu_ms(group))
    label = f"{enterprises} enterprises, {len(ids)} prospects shown, CPU per request, in process"
    for name, value in best.items():
        emit(f"page_cost_{name}_ms", value, "ms", best["bare"], label, inverse=True)


if __name__ == "__main__":
    main()
