"""Configuration fails fast where production would be unsafe."""

import pytest

from app import create_app
from app.config import ConfigError, database_url, load_config


def test_production_without_secret_key_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        load_config(tmp_path, {"XINYIDAI_ENV": "production"})


def test_production_with_short_secret_key_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="too short"):
        load_config(tmp_path, {"XINYIDAI_ENV": "production", "SECRET_KEY": "abc"})


def test_production_cookies_are_secure(tmp_path):
    cfg = load_config(tmp_path, {"XINYIDAI_ENV": "production", "SECRET_KEY": "x" * 40})
    assert cfg["SESSION_COOKIE_SECURE"] is True
    assert cfg["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert cfg["SESSION_COOKIE_HTTPONLY"] is True


def test_development_generates_and_keeps_a_key(tmp_path):
    first = load_config(tmp_path, {"XINYIDAI_ENV": "development"})["SECRET_KEY"]
    second = load_config(tmp_path, {"XINYIDAI_ENV": "development"})["SECRET_KEY"]
    assert first == second and len(first) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_unknown_environment_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="XINYIDAI_ENV"):
        load_config(tmp_path, {"XINYIDAI_ENV": "staging"})


@pytest.mark.parametrize("value", ["-1", "many", "2.5", ""])
def test_a_bad_number_of_kept_prospect_lists_refuses_to_start(tmp_path, value):
    with pytest.raises(ConfigError, match=f"PROSPECT_LISTS_KEPT={value!r}: expected a whole"):
        load_config(tmp_path, {"XINYIDAI_ENV": "development", "PROSPECT_LISTS_KEPT": value})
    kept = load_config(tmp_path, {"XINYIDAI_ENV": "development", "PROSPECT_LISTS_KEPT": "0"})
    assert kept["PROSPECT_LISTS_KEPT"] == 0


def test_database_url_defaults_to_sqlite_and_maps_postgres_driver(tmp_path):
    assert database_url(None, tmp_path) == f"sqlite:///{tmp_path / 'xinyidai.db'}"
    assert database_url("postgres://u@h/db", tmp_path) == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql://u@h/db", tmp_path) == "postgresql+psycopg://u@h/db"


def test_create_app_reads_database_url(monkeypatch, tmp_path):
    monkeypatch.setenv("XINYIDAI_ENV", "development")
    monkeypatch.setenv("XINYIDAI_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://someone@127.0.0.1/somewhere")
    app = create_app()
    assert (
        app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://someone@127.0.0.1/somewhere"
    )


def test_behind_a_proxy_the_client_address_comes_from_x_forwarded_for(app, make_app):
    from flask import request

    proxied = make_app(PROXY_COUNT=1)

    @proxied.get("/_whoami_for_test")
    def _whoami():
        return f"{request.remote_addr} {request.scheme}"

    client = proxied.test_client()
    response = client.get(
        "/_whoami_for_test",
        headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
    )
    assert response.get_data(as_text=True) == "203.0.113.7 https"
    assert app.test_client().get("/healthz").status_code == 200  # the default app: no proxy


def test_only_the_test_suite_uses_the_cheap_password_hash(tmp_path):
    production = load_config(tmp_path, {"XINYIDAI_ENV": "production", "SECRET_KEY": "x" * 40})
    development = load_config(tmp_path, {"XINYIDAI_ENV": "development"})
    testing = load_config(tmp_path, {"XINYIDAI_ENV": "testing"})
    assert production["PASSWORD_HASH_PROFILE"] == "rfc_9106_low_memory"
    assert development["PASSWORD_HASH_PROFILE"] == "rfc_9106_low_memory"
    assert testing["PASSWORD_HASH_PROFILE"] == "cheapest"
