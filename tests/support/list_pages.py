"""The list pages of the three sides, visited logged in on a seeded demo, and the bank Open
API's lists, called with a token of the demo bank's API client, with every SQL statement
each sends (for the EXPLAIN index checks and the statement counts)."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.services import bank_views
from tests.conftest import Account, login

DEMO_PASSWORD = "demo password 2026"

API = "api:bank@demo.test"  # the demo bank's Open API client, with every bank scope

# (login, path): every list and filter of the UI and of the bank Open API; {enterprise} is a
# shared enterprise's id.
PAGES: list[tuple[str, str]] = [
    ("bank@demo.test", "/bank/"),
    ("bank@demo.test", "/bank/products"),
    ("bank@demo.test", "/bank/prospects"),
    ("bank@demo.test", "/bank/enterprises/{enterprise}"),
    ("bank@demo.test", "/bank/applications"),
    ("bank@demo.test", "/bank/loans"),
    ("bank@demo.test", "/bank/claims"),
    ("bank@demo.test", "/bank/needs"),
    ("sme@demo.test", "/enterprise/"),
    ("sme@demo.test", "/enterprise/authorizations"),
    ("sme@demo.test", "/enterprise/data-use"),
    ("sme@demo.test", "/enterprise/products"),
    ("sme@demo.test", "/enterprise/products?type=credit&pool=1"),
    ("sme@demo.test", "/enterprise/applications"),
    ("sme@demo.test", "/enterprise/needs"),
    ("sme@demo.test", "/enterprise/objections"),
    ("sme@demo.test", "/enterprise/records"),
    ("sme@demo.test", "/enterprise/policies"),
    ("sme@demo.test", "/enterprise/profile"),
    ("sme@demo.test", "/notifications"),
    ("office@demo.test", "/office/"),
    ("office@demo.test", "/office/banks"),
    ("office@demo.test", "/office/organizations/1/users"),  # the office's team
    ("office@demo.test", "/office/audit"),
    ("office@demo.test", "/office/audit?action=application."),
    ("office@demo.test", "/office/audit?date_from=2020-01-01&date_to=2030-12-31"),
    ("office@demo.test", "/office/applications/overdue"),
    ("office@demo.test", "/office/ingestion"),
    ("office@demo.test", "/office/objections"),
    ("office@demo.test", "/office/policies"),
    ("office@demo.test", "/office/policies/applications"),
    ("office@demo.test", "/office/pool"),
    ("office@demo.test", "/office/pool/claims"),
    ("office@demo.test", "/office/pool/ledger"),
    ("office@demo.test", "/office/models"),
    ("office@demo.test", "/office/providers"),
    ("office@demo.test", "/notifications"),
    (API, "/api/v1/profiles"),
    (API, "/api/v1/profiles?region=35&industry=C&eligible_only=true&page=2&per_page=5"),
    (API, "/api/v1/profiles/{enterprise}"),
    (API, "/api/v1/applications"),
    (API, "/api/v1/applications?status=submitted"),
    (API, "/api/v1/loans"),
    (API, "/api/v1/needs"),
]


@dataclass
class Captured:
    statements: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def selects(self) -> list[tuple[str, Any]]:
        heads = ("SELECT", "WITH")
        return [(s, p) for s, p in self.statements if s.lstrip().upper().startswith(heads)]


@contextmanager
def capture(app: Flask) -> Iterator[Captured]:
    """Every statement sent on the app's engine while the block runs."""
    found = Captured()
    with app.app_context():
        engine = db.engine

    def listener(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if not many:
            found.statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield found
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


def seed(app: Flask, enterprises: int) -> None:
    """The demo (three sides, products, grants, records, profiles, applications, loans,
    needs, policies) with ``enterprises`` enterprises; again with more adds the difference."""
    app.config["DEMO_MODEL_ENTERPRISES"] = 1500
    import os

    os.environ["XINYIDAI_DEMO_PASSWORD"] = DEMO_PASSWORD
    result = app.test_cli_runner().invoke(args=["seed-demo", "--enterprises", str(enterprises)])
    assert result.exit_code == 0, result.output


def api_token(app: Flask, client: FlaskClient, email: str) -> str:
    """An access token of an Open API client (every bank scope) of the bank ``email`` works
    for, registered for it."""
    from app.api.clients import create_bank_client
    from models import User
    from models.provider import BANK_SCOPES

    with app.app_context():
        officer = db.session.scalar(sa.select(User).where(User.email == email))
        assert officer is not None, email
        issued = create_bank_client(
            None, officer.organization, f"list pages {uuid.uuid4().hex[:8]}", list(BANK_SCOPES)
        )
        pair = f"{issued.client.client_id}:{issued.client_secret}"
        db.session.commit()
    basic = base64.b64encode(pair.encode()).decode()
    response = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["access_token"])


class Visitor:
    """One logged-in client per demo login; for ``api:<login>``, an Open API client of that
    login's bank."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.clients: dict[str, FlaskClient] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.enterprise_id: int | None = None

    def client(self, email: str) -> FlaskClient:
        if email not in self.clients:
            client = self.app.test_client()
            if email.startswith("api:"):
                token = api_token(self.app, client, email.removeprefix("api:"))
                self.headers[email] = {"Authorization": f"Bearer {token}"}
            else:
                login(client, Account(email, DEMO_PASSWORD, 0, 0))
            self.clients[email] = client
        return self.clients[email]

    def path(self, template: str) -> str:
        if "{enterprise}" in template:
            if self.enterprise_id is None:
                page = self.client("bank@demo.test").get("/bank/prospects").get_data(as_text=True)
                match = re.search(r"/bank/enterprises/(\d+)", page)
                assert match, "the demo bank sees no enterprise"
                self.enterprise_id = int(match.group(1))
            return template.format(enterprise=self.enterprise_id)
        return template

    def visit(self, email: str, template: str) -> Captured:
        client = self.client(email)
        headers = self.headers.get(email, {})
        path = self.path(template)
        client.get(path, headers=headers)  # warm up: caches, lazily loaded settings
        # At its costliest: the bank's prospect list matched again, not the one kept.
        self.app.extensions.pop(bank_views.KEPT_LISTS, None)
        with capture(self.app) as found:
            response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.status_code)
        return found
