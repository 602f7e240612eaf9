"""Who may open which pages: one organization kind per blueprint, roles inside it.

Every check runs on the server for every request; templates only hide links.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, abort
from flask_login import current_user

from app.extensions import login_manager
from models import OrgKind, Role

F = TypeVar("F", bound=Callable[..., Any])


def restrict_blueprint(bp: Blueprint, kind: OrgKind) -> None:
    """Admit to ``bp`` only logged-in users of organizations of ``kind``; others get 403."""

    @bp.before_request
    def _check_org_kind() -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if current_user.org_kind is not kind:
            abort(403)
        return None


def role_required(*roles: Role) -> Callable[[F], F]:
    """Admit only users whose role in their organization is one of ``roles``."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def landing_endpoint(kind: OrgKind) -> str:
    return {
        OrgKind.ENTERPRISE: "enterprise.home",
        OrgKind.BANK: "bank.home",
        OrgKind.OFFICE: "office.home",
    }[kind]
