"""The JSON API (``/api/v1``) for data providers: OAuth2 client credentials and pushes.

CSRF-exempt (there are no cookies here: every call carries a bearer token); errors are
RFC 9457 problem JSON.
"""

from __future__ import annotations

import os
import time
from typing import Any, cast

from flask import Blueprint, Flask
from flask.blueprints import BlueprintSetupState

from app.api.errors import ApiProblem

bp = Blueprint("api", __name__)


@bp.record_once
def _init(state: BlueprintSetupState) -> None:
    from app.api import oauth
    from app.api.cli import bank_clients_group, providers_group
    from app.connectors import config_from_env
    from app.connectors.cli import collection_group, jobs_group

    app = cast(Flask, state.app)
    # The connector settings from XINYIDAI_* environment variables; configuration passed to
    # create_app explicitly (tests) wins.
    for key, value in config_from_env(os.environ).items():
        app.config.setdefault(key, value)
    oauth.init_app(app)
    app.cli.add_command(providers_group)
    app.cli.add_command(bank_clients_group)
    app.cli.add_command(collection_group)
    app.cli.add_command(jobs_group)


@bp.errorhandler(ApiProblem)
def _problem(problem: ApiProblem) -> Any:
    return problem.response()


@bp.errorhandler(429)
def _too_many(exc: Any) -> Any:
    from flask_babel import lazy_gettext as _l

    from app.extensions import limiter

    retry_after = 60
    current = limiter.current_limit
    if current is not None:
        retry_after = max(1, int(current.reset_at - time.time()) + 1)
    return ApiProblem(
        429,
        "rate-limited",
        _l("Too many requests"),
        _l(
            "The rate limit for this client or address is reached; retry after %(s)d seconds.",
            s=retry_after,
        ),
        headers={"Retry-After": str(retry_after)},
    ).response()


from app.api import bank_routes, routes  # noqa: E402,F401  (registers the views on bp)
