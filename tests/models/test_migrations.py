"""The Alembic migrations build exactly the schema the models describe, on this database."""

import os
import secrets

import flask_migrate
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app import create_app
from app.extensions import db
from models import Base
from models.records import trigger_enforced
from tests.conftest import _database_config


def test_models_match_migrations(app_ctx):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "include_object": trigger_enforced(conn.dialect.name)},
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ; run `flask db migrate`: {diff}"


def test_upgrade_from_empty_to_head_and_back(tmp_path):
    config, schema = _database_config(tmp_path)
    fresh = create_app({"XINYIDAI_ENV": "testing", "SECRET_KEY": secrets.token_hex(32), **config})
    try:
        with fresh.app_context():
            flask_migrate.upgrade()
            tables = set(sa.inspect(db.engine).get_table_names())
            assert {"organization", "enterprise", "user_account", "user_session"} <= tables
            flask_migrate.downgrade(revision="base")
            assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
            flask_migrate.upgrade()
            assert "enterprise" in sa.inspect(db.engine).get_table_names()
            db.session.remove()
            db.engine.dispose()
    finally:
        if schema:
            engine = sa.create_engine(os.environ["TEST_DATABASE_URL"])
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()
