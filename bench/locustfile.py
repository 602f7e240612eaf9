"""Load scenario: enterprises, banks and the office at once, logged in, on a seeded demo.

    XINYIDAI_DEMO_PASSWORD=... locust -f bench/locustfile.py --headless -u 50 -r 5 -t 10m \
        --host http://127.0.0.1:8000 --csv /tmp/xinyidai-load

The server is the production web process (``gunicorn -c gunicorn.conf.py wsgi:app``) on
PostgreSQL with ``XINYIDAI_ENV=development`` (plain-HTTP cookies) and ``RATELIMIT_ENABLED=0``
(every simulated user logs in from the same address), after
``flask --app wsgi seed-demo --enterprises N``. The mix (weights): 6 enterprises (home, the
product supermarket and its filters, applications, authorizations, profile, data-use log),
3 bank officers (home, prospects, an enterprise's profile, applications, loans) and 1 office
user (home, dashboard, audit trail with a filter, objections, pool). Each simulated user logs
in once with its own demo login (``sme-NNNN@demo.test`` for enterprises). With
``XINYIDAI_API_CLIENT_ID`` / ``XINYIDAI_API_CLIENT_SECRET`` (a bank API client with
``profiles:read applications:write needs:write``; ``bench/load.py`` creates one) 2 bank loan
systems also call the Open API: a token, the authorized profiles, one profile, applications,
open needs.
"""

from __future__ import annotations

import itertools
import os
import random
import re

from locust import HttpUser, between, task

PASSWORD = os.environ.get("XINYIDAI_DEMO_PASSWORD", "")
ENTERPRISES = int(os.environ.get("XINYIDAI_DEMO_ENTERPRISES", "300"))
_TOKEN = re.compile(r'name="csrf-token" content="([^"]+)"')
_next_sme = itertools.count()


class _Portal(HttpUser):
    abstract = True
    wait_time = between(0.5, 2.0)
    email = ""

    def login_as(self, email: str) -> None:
        page = self.client.get("/auth/login", name="/auth/login").text
        token = _TOKEN.search(page)
        assert token, "no CSRF token on the login page"
        with self.client.post(
            "/auth/login",
            data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
            allow_redirects=False,
            catch_response=True,
            name="/auth/login [POST]",
        ) as response:
            if response.status_code != 302:
                response.failure(f"login of {email} failed: {response.status_code}")


class Enterprise(_Portal):
    weight = 6

    def on_start(self) -> None:
        # The first demo enterprise's login is sme@demo.test; the others are sme-0001, ...
        self.login_as(f"sme-{1 + next(_next_sme) % max(1, ENTERPRISES - 1):04d}@demo.test")

    @task(3)
    def home(self) -> None:
        self.client.get("/enterprise/")

    @task(3)
    def supermarket(self) -> None:
        self.client.get("/enterprise/products")
        self.client.get("/enterprise/products?type=credit&pool=1", name="/enterprise/products?…")

    @task(2)
    def applications(self) -> None:
        self.client.get("/enterprise/applications")

    @task(2)
    def authorizations(self) -> None:
        self.client.get("/enterprise/authorizations")

    @task(2)
    def profile(self) -> None:
        self.client.get("/enterprise/profile")

    @task(1)
    def data_use(self) -> None:
        self.client.get("/enterprise/data-use")


class Bank(_Portal):
    weight = 3
    prospects: list[str]

    def on_start(self) -> None:
        self.login_as("bank@demo.test")
        page = self.client.get("/bank/prospects").text
        self.prospects = sorted(set(re.findall(r"/bank/enterprises/(\d+)", page)))

    @task(2)
    def home(self) -> None:
        self.client.get("/bank/")

    @task(3)
    def prospect_list(self) -> None:
        self.client.get("/bank/prospects")

    @task(3)
    def enterprise_profile(self) -> None:
        if self.prospects:
            eid = random.choice(self.prospects)
            self.client.get(f"/bank/enterprises/{eid}", name="/bank/enterprises/[id]")

    @task(2)
    def applications(self) -> None:
        self.client.get("/bank/applications")

    @task(1)
    def loans(self) -> None:
        self.client.get("/bank/loans")


class Office(_Portal):
    weight = 1

    def on_start(self) -> None:
        self.login_as("office@demo.test")

    @task(2)
    def home(self) -> None:
        self.client.get("/office/")

    @task(2)
    def dashboard(self) -> None:
        self.client.get("/office/dashboard")

    @task(2)
    def audit(self) -> None:
        self.client.get("/office/audit")
        self.client.get("/office/audit?action=application.", name="/office/audit?action=…")

    @task(1)
    def objections(self) -> None:
        self.client.get("/office/objections")

    @task(1)
    def pool(self) -> None:
        self.client.get("/office/pool")


API_ID = os.environ.get("XINYIDAI_API_CLIENT_ID", "")
API_SECRET = os.environ.get("XINYIDAI_API_CLIENT_SECRET", "")


class BankApi(HttpUser):
    """A bank's loan system on the Open API (OAuth2 client credentials)."""

    weight = 2 if API_ID else 0
    wait_time = between(0.5, 2.0)
    headers: dict[str, str] = {}  # noqa: RUF012
    profile_ids: list[int] = []  # noqa: RUF012

    def on_start(self) -> None:
        response = self.client.post(
            "/api/v1/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(API_ID, API_SECRET),
            name="/api/v1/oauth/token",
        )
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    @task(3)
    def profiles(self) -> None:
        body = self.client.get(
            "/api/v1/profiles?per_page=20", headers=self.headers, name="/api/v1/profiles"
        ).json()
        self.profile_ids = [item["enterprise"]["id"] for item in body.get("items", [])]

    @task(3)
    def profile(self) -> None:
        if self.profile_ids:
            self.client.get(
                f"/api/v1/profiles/{random.choice(self.profile_ids)}",
                headers=self.headers, name="/api/v1/profiles/{id}",
            )  # fmt: skip

    @task(2)
    def applications(self) -> None:
        self.client.get("/api/v1/applications", headers=self.headers, name="/api/v1/applications")

    @task(1)
    def needs(self) -> None:
        self.client.get("/api/v1/needs", headers=self.headers, name="/api/v1/needs")
