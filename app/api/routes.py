"""OAuth2 endpoints (token, revocation, introspection), the provider push, and the OpenAPI
document with its docs page."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from flask import Response, current_app, jsonify, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from app.api import bp, idempotency, oauth
from app.api.errors import ApiProblem
from app.api.spec import OPERATIONS, openapi_document, operation
from app.extensions import limiter
from app.services import audit, ingestion
from ml import schema
from models import db
from models.base import utcnow
from models.ingestion import IngestionBatch, RejectedRow
from models.provider import ProviderClient

DEFAULT_MAX_RECORDS = 10_000


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str


class OAuthError(BaseModel):
    """RFC 6749 §5.2."""

    error: str
    error_description: str | None = None


class RevokedOut(BaseModel):
    pass


class IntrospectionOut(BaseModel):
    active: bool
    client_id: str | None = None
    scope: str | None = None
    token_type: str | None = None
    iat: int | None = None
    exp: int | None = None


_CLIENT_AUTH_FORM = {
    "client_id": {"type": "string"},
    "client_secret": {"type": "string"},
    "client_assertion_type": {
        "type": "string",
        "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
    },
    "client_assertion": {"type": "string"},
}
TOKEN_FORM = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "scope": {"type": "string"},
        **_CLIENT_AUTH_FORM,
    },
}
TOKEN_QUERY_FORM = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": {"type": "string"},
        "token_type_hint": {"type": "string", "enum": ["access_token"]},
        **_CLIENT_AUTH_FORM,
    },
}
_OAUTH_ERRORS: dict[int, tuple[type[BaseModel], str]] = {
    400: (OAuthError, "OAuth2 error (RFC 6749 §5.2)"),
    401: (OAuthError, "Client authentication failed (RFC 6749 §5.2)"),
}


def _oauth_response(response: Response) -> Response:
    if response.status_code == 200:
        db.session.commit()
    else:
        # A private_key_jwt assertion's jti stays used even when the request fails.
        db.session.commit()
    return response


@operation(
    "POST", "/oauth/token", summary="Issue an access token (client credentials)", tag="oauth",
    form=TOKEN_FORM, response=TokenOut, problems=(429,), extra_responses=_OAUTH_ERRORS, raw=True,
)  # fmt: skip
@limiter.limit(lambda: current_app.config.get("OAUTH2_TOKEN_RATE_LIMIT", "60 per minute"))
def issue_token() -> Response:
    """RFC 6749 §4.4 with client_secret_basic, client_secret_post or private_key_jwt
    (RFC 7523: ``aud`` = this endpoint's URL, ``exp`` within 10 minutes, a fresh ``jti``).
    Errors are OAuth2 JSON (§5.2)."""
    return _oauth_response(oauth.server.create_token_response())


@operation(
    "POST", "/oauth/revoke", summary="Revoke an access token (RFC 7009)", tag="oauth",
    form=TOKEN_QUERY_FORM, response=RevokedOut, problems=(429,), extra_responses=_OAUTH_ERRORS,
    raw=True,
)  # fmt: skip
def revoke_token() -> Response:
    """The client revokes one of its own tokens; it stops working at once."""
    return _oauth_response(oauth.server.create_endpoint_response("revocation"))


@operation(
    "POST", "/oauth/introspect", summary="Introspect an access token (RFC 7662)", tag="oauth",
    form=TOKEN_QUERY_FORM, response=IntrospectionOut, problems=(429,),
    extra_responses=_OAUTH_ERRORS, raw=True,
)  # fmt: skip
def introspect_token() -> Response:
    """Whether one of the client's own tokens is active (revoked, expired or someone else's:
    ``{"active": false}``)."""
    return _oauth_response(oauth.server.create_endpoint_response("introspection"))


def _client_for(source: str) -> ProviderClient:
    token = oauth.current_token()
    client = token.client
    if source not in schema.SOURCE_TABLES:
        raise ApiProblem(
            404,
            "unknown-source",
            _l("Unknown source"),
            _l(
                "There is no source %(s)s; sources are %(all)s.",
                s=source,
                all=", ".join(schema.SOURCE_TABLES),
            ),
        )
    if not client.may_push(source):
        audit.record(
            "provider.scope_refused",
            actor=None,
            scope=source,
            object_type="provider_client",
            object_id=client.client_id,
            details={"registered_source": client.source},
        )
        db.session.commit()
        raise ApiProblem(
            403,
            "scope-creep",
            _l("Scope creep"),
            _l(
                "This client is registered to push %(own)s only; it may not push %(s)s.",
                own=client.source,
                s=source,
            ),
        )
    return client


def _cell(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _records() -> list[dict[str, str]]:
    """The body's records as rows of text values, or :class:`ApiProblem`."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise ApiProblem(
            400,
            "invalid-body",
            _l("Invalid body"),
            _l('Send a JSON object {"records": [...]} with Content-Type application/json.'),
            errors=[{"field": "records", "message": str(_l("a list of objects is required"))}],
        )
    raw = body["records"]
    limit = int(current_app.config.get("API_MAX_RECORDS", DEFAULT_MAX_RECORDS))
    if len(raw) > limit:
        raise ApiProblem(
            413,
            "too-many-records",
            _l("Too many records"),
            _l("Send at most %(n)d records per request.", n=limit),
        )
    rows: list[dict[str, str]] = []
    errors: list[dict[str, Any]] = []
    for line, record in enumerate(raw, start=1):
        if not isinstance(record, dict):
            errors.append({"line": line, "field": None, "message": str(_l("not an object"))})
            continue
        row: dict[str, str] = {}
        for field, value in record.items():
            cell = _cell(value)
            if cell is None:
                errors.append(
                    {"line": line, "field": field, "message": str(_l("not a single value"))}
                )
            else:
                row[str(field)] = cell
        rows.append(row)
    if errors:
        raise ApiProblem(
            422,
            "invalid-records",
            _l("Invalid records"),
            _l("Some records are not flat objects of values; nothing was stored."),
            errors=errors,
        )
    return rows


def _batch_body(batch: IngestionBatch) -> dict[str, Any]:
    rejected = db.session.scalars(
        sa.select(RejectedRow)
        .where(RejectedRow.batch_id == batch.id)
        .order_by(RejectedRow.line, RejectedRow.id)
    )
    return {
        "batch_id": batch.id,
        "source": batch.source,
        "status": batch.status.value,
        "counts": {
            "received": batch.rows_total,
            "accepted": batch.accepted,
            "duplicates": batch.duplicates,
            "corrected": batch.corrected,
            "rejected": batch.rejected,
        },
        "rejected": [
            {"line": r.line, "field": r.field, "code": r.code, "message": r.message}
            for r in rejected
        ],
    }


def _ingest(
    client: ProviderClient, source: str, key: str, rows: list[dict[str, str]]
) -> tuple[IngestionBatch, bool]:
    """The batch, and whether it is an earlier one with this key (a replay)."""
    now = utcnow()
    try:
        batch = ingestion.ingest_rows(
            source,
            rows,
            provider=client.name,
            idempotency_key=key,
            actor=client.client_id,
            now=now,
        )
        # A new batch is received now; one found by its key was received before.
        return batch, batch.received_at != now
    except ingestion.IdempotencyConflict as exc:
        db.session.rollback()
        raise ApiProblem(
            409,
            "idempotency-key-reused",
            _l("Idempotency-Key reused"),
            _l(
                "This Idempotency-Key was used for a different batch. Use a new key for new "
                "records; resend exactly the same batch to get its result again."
            ),
            errors=[{"field": "Idempotency-Key", "message": str(exc.message)}],
        ) from exc
    except ingestion.MissingColumns as exc:
        db.session.rollback()
        raise ApiProblem(
            422,
            "missing-columns",
            _l("Missing columns"),
            exc.message,
            errors=[{"field": c, "message": str(_l("required"))} for c in exc.columns],
        ) from exc
    except ingestion.IngestionError as exc:
        db.session.rollback()
        raise ApiProblem(422, exc.code.replace("_", "-"), _l("Batch refused"), exc.message) from exc


class IngestIn(BaseModel):
    records: list[dict[str, str | int | float | bool | None]]


class RejectedOut(BaseModel):
    line: int
    field: str | None
    code: str
    message: str


class BatchCounts(BaseModel):
    received: int
    accepted: int
    duplicates: int
    corrected: int
    rejected: int


class BatchOut(BaseModel):
    batch_id: int
    source: str
    status: str
    counts: BatchCounts
    rejected: list[RejectedOut]


@operation(
    "POST", "/ingest/<source>", summary="Push a batch of records (providers)", tag="providers",
    scope="ingest:<source>", body=IngestIn, response=BatchOut, status=201,
    problems=(400, 401, 403, 404, 409, 413, 422), raw=True, key_header=True,
)  # fmt: skip
def ingest(source: str) -> Response:
    """Push a batch: ``{"records": [...]}`` with an ``Idempotency-Key`` header.

    201 with the batch id and counts (rejected rows with line, field and message); the same
    key and body again → the same answer (``Idempotent-Replayed: true``), nothing written;
    the same key with another body → 409."""
    client = _client_for(source)
    key = idempotency.key_of_request(
        _l("Send an Idempotency-Key header, unique per batch, so a retry cannot ingest twice.")
    )
    rows = _records()
    try:
        batch, replayed = _ingest(client, source, key, rows)
        db.session.commit()
    except IntegrityError:
        # A concurrent request with the same key won the race: now it is a replay (or 409).
        db.session.rollback()
        batch, replayed = _ingest(client, source, key, rows)
    response = jsonify(_batch_body(batch))
    response.status_code = 201
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _document() -> dict[str, Any]:
    return openapi_document(
        url_for("api.openapi_json", _external=True).rsplit("/", 1)[0],
        url_for("api.issue_token", _external=True),
    )


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3.1 document, generated from the operations' declarations."""
    return jsonify(_document())


@bp.get("/docs")
def docs() -> Any:
    """The same document, readable: rendered on the server, no script."""
    import json

    document = _document()
    schemas = {
        name: json.dumps(schema, indent=2, ensure_ascii=False)
        for name, schema in document["components"]["schemas"].items()
    }
    return render_template(
        "api/docs.html", document=document, operations=OPERATIONS, schemas=schemas
    )
