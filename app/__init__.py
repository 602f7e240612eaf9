"""Xinyidai web application: ``create_app`` builds a configured Flask app."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, flash, request, session

from app.config import load_config
from app.extensions import babel, csrf, db, limiter, login_manager, migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def select_locale() -> str:
    """The language cookie set by the switch, else Chinese."""
    from flask import current_app

    languages = current_app.config["LANGUAGES"]
    chosen = request.cookies.get("lang") if request else None
    if chosen in languages:
        return str(chosen)
    return str(current_app.config["BABEL_DEFAULT_LOCALE"])


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides what the environment says (tests use it)."""
    instance_path = os.environ.get("XINYIDAI_INSTANCE_PATH")
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    environ = dict(os.environ)
    if config and "XINYIDAI_ENV" in config:
        environ["XINYIDAI_ENV"] = config["XINYIDAI_ENV"]
    if config and "SECRET_KEY" in config:
        environ["SECRET_KEY"] = config["SECRET_KEY"]
    app.config.update(load_config(Path(app.instance_path), environ))
    if config:
        app.config.update(config)
    from app import security

    security.init_app(app)
    proxies = int(app.config.get("PROXY_COUNT") or 0)
    if proxies:
        # Behind nginx or a load balancer: take the client address and scheme from the
        # X-Forwarded-* headers those proxies set (and only from that many hops), so the
        # login rate limit counts real clients.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    import models  # noqa: F401  (registers every table on the metadata)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    _init_login(app)

    from app.api import bp as api_bp
    from app.auth import bp as auth_bp
    from app.bank import bp as bank_bp
    from app.enterprise import bp as enterprise_bp
    from app.main import bp as main_bp
    from app.office import bp as office_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(enterprise_bp, url_prefix="/enterprise")
    app.register_blueprint(bank_bp, url_prefix="/bank")
    app.register_blueprint(office_bp, url_prefix="/office")
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    csrf.exempt(api_bp)

    from app import cli, errors, templating

    errors.register(app)
    templating.register(app)
    cli.register(app)

    return app


def _init_login(app: Flask) -> None:
    from flask_babel import lazy_gettext as _l

    from app.services import accounts

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please log in to see this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(token: str) -> Any:
        return accounts.load_session_user(token)

    @app.before_request
    def _idle_timeout() -> None:
        # Runs before anything loads the user: a session idle for too long is dropped from
        # the cookie, so the request proceeds anonymously and the login page says why.
        if accounts.idle_session_expired(session, app.config["SESSION_IDLE_MINUTES"]):
            session.clear()
            flash(
                _l("Your session ended after a period of inactivity. Please log in again."), "info"
            )
