"""Schemathesis against the app's own OpenAPI document, in-process (WSGI): every operation,
with and without a valid token — no server error, no response outside the document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api import clients
from app.extensions import db
from tests.api.conftest import bearer, token_for

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(app: Any) -> Iterator[Any]:
    app.config.update(
        API_RATE_LIMIT_CLIENT="100000 per minute",
        API_RATE_LIMIT_IP="100000 per minute",
        OAUTH2_TOKEN_RATE_LIMIT="100000 per minute",
        IDEMPOTENCY_WAIT_SECONDS=0,
    )
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    finally:
        for key in ("API_RATE_LIMIT_CLIENT", "API_RATE_LIMIT_IP", "OAUTH2_TOKEN_RATE_LIMIT",
                    "IDEMPOTENCY_WAIT_SECONDS"):  # fmt: skip
            app.config.pop(key, None)


@pytest.fixture
def tokens(client: Any, world: Any) -> dict[str, str]:
    """A bank token with every bank scope and a tax provider's token."""
    issued = clients.create_client(None, "税务局", "tax")
    db.session.commit()
    return {
        "bank": token_for(client, world.bank.creds),
        "provider": token_for(client, (issued.client.client_id, issued.client_secret)),
    }


SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def operations(api_schema: Any) -> list[Any]:
    found = [result.ok() for result in api_schema.get_all_operations()]
    assert len(found) >= 18  # every operation of the document
    return found


def fuzz(operation: Any, headers: dict[str, str] | None) -> None:
    @given(case=operation.as_strategy())
    @SETTINGS
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()


def test_without_a_token(api_schema: Any) -> None:
    for operation in operations(api_schema):
        fuzz(operation, None)


def test_with_a_valid_token(api_schema: Any, tokens: dict[str, str]) -> None:
    for operation in operations(api_schema):
        token = tokens["provider"] if operation.path.startswith("/ingest") else tokens["bank"]
        fuzz(operation, bearer(token))
