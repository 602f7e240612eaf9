"""Connectors: fetching an enterprise's records from data providers.

``connector_for(config)`` builds the connector the configuration names:

``CONNECTOR``
    ``"sandbox"`` (default: deterministic synthetic records, the demo) or ``"http"`` (real
    provider endpoints), or a :class:`Connector` object (tests, embedding).
``PROVIDER_ENDPOINTS``
    for ``"http"``: ``{scope: {"name", "base_url", "client_id", "client_secret",
    "token_url" (optional)}}``.
``CONNECTOR_TIMEOUT``, ``CONNECTOR_RETRIES``, ``CONNECTOR_BACKOFF``, ``CONNECTOR_BACKOFF_MAX``,
``CONNECTOR_BREAKER_THRESHOLD``, ``CONNECTOR_BREAKER_COOLDOWN``
    seconds / counts, see :class:`RetryPolicy` (defaults 10, 3, 0.5, 8, 5, 30).

:func:`config_from_env` reads the same keys from ``XINYIDAI_*`` environment variables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.connectors.base import (
    Connector,
    ConnectorError,
    FailureReason,
    Rows,
    Tables,
    columns_for,
    validate_tables,
)
from app.connectors.http import HttpConnector, ProviderEndpoint, RetryPolicy
from app.connectors.sandbox import SandboxConnector

__all__ = [
    "Connector",
    "ConnectorError",
    "FailureReason",
    "HttpConnector",
    "ProviderEndpoint",
    "RetryPolicy",
    "Rows",
    "SandboxConnector",
    "Tables",
    "columns_for",
    "config_from_env",
    "connector_for",
    "validate_tables",
]

_ENV_NUMBERS = {
    "CONNECTOR_TIMEOUT": float,
    "CONNECTOR_RETRIES": int,
    "CONNECTOR_BACKOFF": float,
    "CONNECTOR_BACKOFF_MAX": float,
    "CONNECTOR_BREAKER_THRESHOLD": int,
    "CONNECTOR_BREAKER_COOLDOWN": float,
}


def config_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """``XINYIDAI_CONNECTOR``, ``XINYIDAI_PROVIDER_ENDPOINTS`` (JSON) and
    ``XINYIDAI_CONNECTOR_TIMEOUT`` … as configuration keys; unset variables are left out.
    Raises ``ValueError`` naming a variable that does not parse."""
    out: dict[str, Any] = {}
    if environ.get("XINYIDAI_CONNECTOR"):
        out["CONNECTOR"] = environ["XINYIDAI_CONNECTOR"]
    if environ.get("XINYIDAI_PROVIDER_ENDPOINTS"):
        try:
            out["PROVIDER_ENDPOINTS"] = json.loads(environ["XINYIDAI_PROVIDER_ENDPOINTS"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"XINYIDAI_PROVIDER_ENDPOINTS is not valid JSON: {exc}") from exc
    for key, kind in _ENV_NUMBERS.items():
        raw = environ.get(f"XINYIDAI_{key}")
        if raw:
            try:
                out[key] = kind(raw)
            except ValueError as exc:
                raise ValueError(f"XINYIDAI_{key}={raw!r} is not a number") from exc
    return out


def retry_policy(config: Mapping[str, Any]) -> RetryPolicy:
    default = RetryPolicy()
    return RetryPolicy(
        timeout=float(config.get("CONNECTOR_TIMEOUT", default.timeout)),
        retries=int(config.get("CONNECTOR_RETRIES", default.retries)),
        backoff_base=float(config.get("CONNECTOR_BACKOFF", default.backoff_base)),
        backoff_max=float(config.get("CONNECTOR_BACKOFF_MAX", default.backoff_max)),
        breaker_threshold=int(config.get("CONNECTOR_BREAKER_THRESHOLD", default.breaker_threshold)),
        breaker_cooldown=float(config.get("CONNECTOR_BREAKER_COOLDOWN", default.breaker_cooldown)),
    )


def endpoints(config: Mapping[str, Any]) -> dict[str, ProviderEndpoint]:
    raw = config.get("PROVIDER_ENDPOINTS") or {}
    out: dict[str, ProviderEndpoint] = {}
    for scope, entry in raw.items():
        try:
            out[scope] = ProviderEndpoint(
                name=str(entry.get("name") or scope),
                base_url=str(entry["base_url"]),
                client_id=str(entry["client_id"]),
                client_secret=str(entry["client_secret"]),
                token_url=entry.get("token_url"),
            )
        except (KeyError, AttributeError) as exc:
            raise ValueError(
                f"PROVIDER_ENDPOINTS[{scope!r}] needs base_url, client_id and client_secret"
            ) from exc
    return out


def connector_for(config: Mapping[str, Any]) -> Connector:
    """The connector ``config`` names. Raises ``ValueError`` for an unknown kind."""
    kind = config.get("CONNECTOR", "sandbox")
    if isinstance(kind, Connector):
        return kind
    if kind == "sandbox":
        return SandboxConnector()
    if kind == "http":
        return HttpConnector(endpoints(config), retry_policy(config))
    raise ValueError(f"CONNECTOR={kind!r}: expected 'sandbox' or 'http'")
