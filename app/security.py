"""Security settings, response headers and re-authentication before sensitive changes.

- Every response carries a strict Content-Security-Policy (no inline script or style, no
  eval), ``X-Content-Type-Options``, ``Referrer-Policy``, ``Permissions-Policy``,
  ``X-Frame-Options`` and, in production, HSTS.
- :func:`reauth_required` sends a user whose last password (and TOTP) check is older than
  ``REAUTH_MINUTES`` to confirm it, then back to where they were.
- ``REQUIRE_2FA_FOR`` (``bank,office`` in production) makes TOTP enrolment mandatory for
  those organization kinds at their next login.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from flask import Flask, current_app, redirect, request, session, url_for
from flask.cli import AppGroup, with_appcontext
from flask_login import current_user
from werkzeug.wrappers import Response

from app.config import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
)
HSTS = "max-age=63072000; includeSubDomains"
AUTH_AT = "auth_at"  # session key: when the user last proved who they are (epoch seconds)


def init_app(app: Flask) -> None:
    """Security settings (environment, unless the app's config already sets them) and the
    response headers. Called by ``create_app`` after the configuration is loaded."""
    mode = app.config["XINYIDAI_ENV"]
    relaxed = mode in ("development", "testing")
    if not app.config.get("FIELD_KEYS"):
        keys = os.environ.get("FIELD_KEYS")
        if not keys:
            if not relaxed:
                raise ConfigError(
                    "FIELD_KEYS is not set. Generate the first key with `python -m "
                    "app.services.crypto` and set FIELD_KEYS=kid:base64key (see README, "
                    "Security)."
                )
            from app.services.crypto import dev_keys

            keys = dev_keys(Path(app.instance_path))
        app.config["FIELD_KEYS"] = keys
    from app.services.crypto import parse_keys

    parse_keys(app.config["FIELD_KEYS"])  # fail at start, not at the first encrypted read
    app.config.setdefault("REAUTH_MINUTES", int(os.environ.get("REAUTH_MINUTES", "10")))
    app.config.setdefault(
        "REQUIRE_2FA_FOR", os.environ.get("REQUIRE_2FA_FOR", "" if relaxed else "bank,office")
    )
    app.config.setdefault("TOTP_RATE_LIMIT", os.environ.get("TOTP_RATE_LIMIT", "10 per minute"))
    app.config.setdefault("HSTS", not relaxed)

    app.cli.add_command(keys_group)
    from app.services import personal_data

    @app.template_global("legal_rep_masked")
    def _legal_rep_masked(enterprise: Any) -> Any:
        return personal_data.masked(enterprise)

    @app.template_global("legal_rep_may_reveal")
    def _legal_rep_may_reveal(enterprise: Any) -> bool:
        return bool(
            current_user.is_authenticated and personal_data.may_reveal(current_user, enterprise)
        )

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if app.config["HSTS"]:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if current_user and getattr(current_user, "is_authenticated", False):
            # Pages behind a login are never kept by shared caches or the back button.
            headers.setdefault("Cache-Control", "no-store")
        return response


def two_factor_required_for(kind: Any) -> bool:
    wanted = {k.strip() for k in str(current_app.config.get("REQUIRE_2FA_FOR", "")).split(",") if k}
    return getattr(kind, "value", str(kind)) in wanted


# Re-authentication ---------------------------------------------------------------------


def mark_authenticated() -> None:
    """The user just proved who they are (login, or the re-authentication page)."""
    session[AUTH_AT] = int(time.time())


def recently_authenticated(minutes: int | None = None) -> bool:
    minutes = current_app.config["REAUTH_MINUTES"] if minutes is None else minutes
    at = session.get(AUTH_AT)
    return isinstance(at, int | float) and time.time() - at <= minutes * 60


def _return_path() -> str:
    """Where to come back after confirming: this page for a GET, else the page the form was
    on (a POST cannot be replayed by a redirect)."""
    from app.auth.redirects import safe_next

    if request.method == "GET":
        return request.full_path.rstrip("?")
    referrer = request.referrer or ""
    parts = urlsplit(referrer)
    if parts.netloc == request.host:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if safe_next(path):
            return path
    return "/"


def reauth_required(
    minutes: int | None = None, methods: tuple[str, ...] | None = None
) -> Callable[[F], F]:
    """Ask for the password (and TOTP code when enrolled) again when the last proof is older
    than ``minutes`` (``REAUTH_MINUTES`` when ``None``), then come back. ``methods`` limits
    the check to those HTTP methods (e.g. ``("POST",)`` for a list page with an add form)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if methods is not None and request.method not in methods:
                return view(*args, **kwargs)
            if current_user.is_authenticated and not recently_authenticated(minutes):
                target = url_for("auth.reauth", next=_return_path())
                if request.headers.get("HX-Request"):
                    response = Response(status=204)
                    response.headers["HX-Redirect"] = target
                    return response
                return redirect(target)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


# ``flask keys ...`` ----------------------------------------------------------------------

keys_group = AppGroup("keys", help="Field-encryption keys (FIELD_KEYS).")


@keys_group.command("new")
@click.option("--kid", default=None, help="Key id (letters, digits, - and _); random if omitted.")
def keys_new(kid: str | None) -> None:
    """Print a new key entry to put first in FIELD_KEYS (then run `keys rotate`)."""
    from app.services.crypto import FieldKeyError, new_key_spec

    try:
        click.echo(new_key_spec(kid))
    except FieldKeyError as exc:
        raise click.BadParameter(str(exc), param_hint="--kid") from None


@keys_group.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
@with_appcontext
def keys_rotate(batch_size: int) -> None:
    """Re-encrypt every encrypted value with the current (first) key. Safe to run again."""
    from app.services import crypto

    ring = crypto.keyring()
    for result in crypto.rotate(batch_size):
        click.echo(f"{result.column}: {result.rewritten} re-encrypted")
    click.echo(f"All values are under key {ring.current}.")


@keys_group.command("status")
@with_appcontext
def keys_status() -> None:
    """How many stored values each key id encrypts; a key with none may leave FIELD_KEYS."""
    from app.services import crypto

    ring = crypto.keyring()
    used = crypto.key_ids_in_use()
    for kid in ring.keys:
        mark = " (current)" if kid == ring.current else ""
        click.echo(f"{kid}{mark}: {used.pop(kid, 0)} values")
    for kid, n in used.items():
        click.echo(f"{kid} (NOT CONFIGURED): {n} values")
