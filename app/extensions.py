"""Extension objects, created unbound and initialised by ``create_app``."""

from __future__ import annotations

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

from models.base import db

migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
babel = Babel()

__all__ = ["babel", "commit_keeping_loaded", "csrf", "db", "limiter", "login_manager", "migrate"]


def commit_keeping_loaded() -> None:
    """Commit the session's transaction without expiring what it has loaded.

    For a page that records what it read (a use count, an audit event) and must commit
    before rendering, so that the audit chain's lock is not held while the page renders: the
    rows already read stay readable instead of being reloaded one statement at a time.
    """
    session = db.session()
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire
