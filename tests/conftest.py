"""Fixtures shared by the whole suite.

The database is SQLite (a temporary file) unless ``TEST_DATABASE_URL`` names a PostgreSQL
database; there every run gets its own schema, dropped at the end. The schema is built by
the Alembic migrations, exactly as production builds it. After each test every table is
emptied (rather than rolling back a wrapping transaction) so the same data path serves
requests from the test client and from the live server thread the browser tests use.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale

from app import create_app
from app.extensions import db, limiter
from app.services import accounts
from models import Base, Organization, OrgKind, Role, User

TEST_PASSWORD = "correct horse battery"
# Tests about concurrent writers always use PostgreSQL, also in the SQLite pass.
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _database_config(tmp: Path, url: str | None = None) -> tuple[dict[str, Any], str | None]:
    url = url or os.environ.get("TEST_DATABASE_URL")
    if not url:
        return {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'test.db'}"}, None
    schema = f"xyd_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return {
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "pool_pre_ping": True,
            "connect_args": {"options": f"-csearch_path={schema}"},
        },
    }, schema


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    tmp = tmp_path_factory.mktemp("instance")
    os.environ["XINYIDAI_INSTANCE_PATH"] = str(tmp)
    db_config, schema = _database_config(tmp)
    application = create_app(
        {
            "XINYIDAI_ENV": "testing",
            "SECRET_KEY": secrets.token_hex(32),
            "RATELIMIT_STORAGE_URI": "memory://",
            **db_config,
        }
    )
    with application.app_context():
        flask_migrate.upgrade()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    if schema:
        _drop_schema(os.environ["TEST_DATABASE_URL"], schema)


def _drop_schema(url: str, schema: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def pg_app(tmp_path: Path) -> Iterator[Flask]:
    """A separate app on a fresh PostgreSQL schema, for tests of concurrent writers."""
    db_config, schema = _database_config(tmp_path, POSTGRES_URL)
    application = create_app(
        {"XINYIDAI_ENV": "testing", "SECRET_KEY": secrets.token_hex(32), **db_config}
    )
    with application.app_context():
        flask_migrate.upgrade()
    try:
        yield application
    finally:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()
        assert schema is not None
        _drop_schema(POSTGRES_URL, schema)


@pytest.fixture(autouse=True)
def _clean_database(app: Flask) -> Iterator[None]:
    yield
    with app.app_context():
        db.session.remove()
        # match_epoch keeps the one row its migration inserted (the emptied tables change it).
        tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name != "match_epoch"]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in tables)
                conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(table.delete())
    limiter.reset()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser that has switched the interface to English (assertions read English text);
    the Chinese default is tested on its own."""
    test_client = app.test_client()
    test_client.set_cookie("lang", "en")
    return test_client


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def make_app(app: Flask) -> Iterator[Any]:
    """``make_app(**overrides)``: another app on the same database; its connections are
    closed afterwards (a pool left to the garbage collector warns at a random later test)."""
    made: list[Flask] = []

    def _make(**overrides: Any) -> Flask:
        made.append(create_app({**app.config, **overrides}))
        return made[-1]

    yield _make
    for other in made:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app_ctx(app: Flask) -> Iterator[Flask]:
    """For tests that call services or models directly; messages in English."""
    with app.app_context(), force_locale("en"):
        yield app
        db.session.remove()


# Factories --------------------------------------------------------------------------


@dataclass
class Account:
    email: str
    password: str
    user_id: int
    organization_id: int


class Factory:
    """Creates domain objects through the services, committing each."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def organization(self, kind: OrgKind, name: str | None = None) -> int:
        with self.app.app_context():
            org = accounts.create_organization(None, kind, name or f"{kind.value} {self._next()}")
            db.session.commit()
            return org.id

    def user(self, kind: OrgKind, role: Role = Role.ADMIN, org_id: int | None = None) -> Account:
        with self.app.app_context():
            if kind is OrgKind.ENTERPRISE:
                return self.enterprise(role=role)
            org_id = org_id or self.organization(kind)
            org = db.session.get(Organization, org_id)
            assert org is not None
            email = f"{kind.value}{self._next()}@example.com"
            user, _ = accounts.create_user(None, org, email, "Test User", role, TEST_PASSWORD)
            db.session.commit()
            return Account(email, TEST_PASSWORD, user.id, org.id)

    def enterprise(self, role: Role = Role.ADMIN, uscc: str | None = None) -> Account:
        from app.services.demo import demo_uscc

        n = self._next()
        with self.app.app_context():
            user = accounts.register_enterprise(
                accounts.EnterpriseRegistration(
                    uscc=uscc or demo_uscc(10_000 + n),
                    name=f"测试企业{n}有限公司",
                    legal_representative="林测试",
                    founded_on=__import__("datetime").date(2018, 5, 1),
                    region_code="350102",
                    industry_code="C13",
                    employees=25,
                    annual_revenue=Decimal("5000000"),
                    total_assets=None,
                    user_name="经办人",
                    email=f"sme{n}@example.com",
                    password=TEST_PASSWORD,
                )
            )
            user.role = role
            db.session.commit()
            return Account(user.email, TEST_PASSWORD, user.id, user.organization_id)


@pytest.fixture
def factory(app: Flask) -> Factory:
    return Factory(app)


# Web helpers ------------------------------------------------------------------------

_CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    """The CSRF token of the client's session, read from a page as a browser would."""
    match = _CSRF_META.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: FlaskClient, account: Account) -> Any:
    response = client.post(
        "/auth/login",
        data={
            "email": account.email,
            "password": account.password,
            "csrf_token": csrf_token(client),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


@pytest.fixture
def login_as(client: FlaskClient, factory: Factory) -> Any:
    """``login_as(OrgKind.BANK)`` creates a user of that kind, logs in and returns it."""

    def _login(kind: OrgKind, role: Role = Role.ADMIN) -> Account:
        account = factory.user(kind, role)
        login(client, account)
        return account

    return _login


def user_by_email(email: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.email == email))
    assert user is not None
    return user
