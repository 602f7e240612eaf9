"""Configuration read from the environment.

``XINYIDAI_ENV`` is ``production`` unless set to ``development`` or ``testing``. Outside
development and testing, ``SECRET_KEY`` must be set: there is no fallback key. In
development a random key is generated once and kept in ``instance/secret_key`` so logins
survive a restart.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("production", "development", "testing")


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


def database_url(raw: str | None, instance_path: Path) -> str:
    """SQLAlchemy URL: ``DATABASE_URL`` (postgres URLs get the psycopg 3 driver) or SQLite."""
    if not raw:
        return f"sqlite:///{instance_path / 'xinyidai.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def _dev_secret(instance_path: Path) -> str:
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def load_config(instance_path: Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    mode = env.get("XINYIDAI_ENV", "production")
    if mode not in ENVIRONMENTS:
        raise ConfigError(f"XINYIDAI_ENV={mode!r}: expected one of {', '.join(ENVIRONMENTS)}")
    relaxed = mode in ("development", "testing")

    secret = env.get("SECRET_KEY")
    if not secret:
        if not relaxed:
            raise ConfigError(
                "SECRET_KEY is not set. Set it to a long random value (for example the output "
                "of `python -c 'import secrets; print(secrets.token_hex(32))'`)."
            )
        secret = _dev_secret(instance_path)
    elif not relaxed and len(secret) < 32:
        raise ConfigError("SECRET_KEY is too short: use at least 32 random characters.")

    kept = env.get("PROSPECT_LISTS_KEPT", "32")
    if not kept.isdigit():
        raise ConfigError(
            f"PROSPECT_LISTS_KEPT={kept!r}: expected a whole number, 0 or more (the banks "
            "whose matched prospect list each web process keeps)."
        )

    redis_url = env.get("REDIS_URL")
    return {
        "XINYIDAI_ENV": mode,
        "TESTING": mode == "testing",
        "SECRET_KEY": secret,
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("DATABASE_URL"), instance_path),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        # Cookies: never readable from JavaScript, not sent on cross-site subrequests, and
        # only over HTTPS in production (where the __Host- prefix also pins them to this host).
        "SESSION_COOKIE_NAME": "xinyidai_session" if relaxed else "__Host-xinyidai_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": not relaxed,
        "SESSION_IDLE_MINUTES": int(env.get("SESSION_IDLE_MINUTES", "30")),
        "SESSION_ABSOLUTE_HOURS": int(env.get("SESSION_ABSOLUTE_HOURS", "12")),
        "REMEMBER_COOKIE_DURATION": 0,
        "LOGIN_MAX_FAILURES": int(env.get("LOGIN_MAX_FAILURES", "5")),
        "LOGIN_LOCK_MINUTES": int(env.get("LOGIN_LOCK_MINUTES", "15")),
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "20 per minute"),
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        "WTF_CSRF_SSL_STRICT": not relaxed,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "RATELIMIT_ENABLED": env.get("RATELIMIT_ENABLED", "1") != "0",
        # Redis down: count in each process's memory meanwhile, rather than fail the request.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "REDIS_URL": redis_url,
        # Background jobs (app/jobs.py): eager | thread (embedded default) | celery.
        "JOBS_BACKEND": env.get("JOBS_BACKEND", "thread"),
        "CELERY_BROKER_URL": env.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        "JOBS_CHUNK_TIMEOUT": float(env.get("JOBS_CHUNK_TIMEOUT", "120")),
        "JOBS_HEARTBEAT_SECONDS": float(env.get("JOBS_HEARTBEAT_SECONDS", "15")),
        "JOBS_CHUNK_ATTEMPTS": int(env.get("JOBS_CHUNK_ATTEMPTS", "3")),
        "RESCORE_CHUNK": int(env.get("RESCORE_CHUNK", "500")),
        # Banks whose matched prospect list each web process keeps (bank_views.prospect_page).
        "PROSPECT_LISTS_KEPT": int(kept),
        "PROXY_COUNT": int(env.get("XINYIDAI_PROXY_COUNT", "0")),
        "BABEL_DEFAULT_LOCALE": "zh",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
        "LANGUAGES": ("zh", "en"),
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
        # Argon2id cost: the test suite alone uses the cheapest profile.
        "PASSWORD_HASH_PROFILE": "cheapest" if mode == "testing" else "rfc_9106_low_memory",
    }
