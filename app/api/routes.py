"""The provider API: the token endpoint and pushing a batch of records."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, jsonify, request
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from app.api import bp, oauth
from app.api.errors import ApiProblem
from app.extensions import limiter
from app.services import audit, ingestion
from ml import schema
from models import db
from models.base import utcnow
from models.ingestion import IngestionBatch, RejectedRow
from models.provider import ProviderClient

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
DEFAULT_MAX_RECORDS = 10_000


def _refuse_query_credentials() -> None:
    """Credentials in a URL end up in logs and browser histories: refuse them outright."""
    leaked = {"access_token", "client_secret"} & set(request.args)
    if leaked:
        raise ApiProblem(
            400,
            "credentials-in-url",
            _l("Credentials in the URL"),
            _l(
                "Send access tokens in the Authorization header and client secrets in the "
                "request body or with HTTP Basic authentication, never in the URL."
            ),
            errors=[
                {"field": name, "message": str(_l("not accepted in the URL"))}
                for name in sorted(leaked)
            ],
        )


@bp.post("/oauth/token")
@limiter.limit(lambda: current_app.config.get("OAUTH2_TOKEN_RATE_LIMIT", "60 per minute"))
def issue_token() -> Response:
    """RFC 6749 §4.4 client-credentials token endpoint (errors are OAuth2 JSON, §5.2)."""
    _refuse_query_credentials()
    response: Response = oauth.server.create_token_response()
    if response.status_code == 200:
        db.session.commit()
    else:
        db.session.rollback()
    return response


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


def _idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        raise ApiProblem(
            400,
            "idempotency-key-missing",
            _l("Idempotency-Key missing"),
            _l("Send an Idempotency-Key header, unique per batch, so a retry cannot ingest twice."),
            errors=[{"field": "Idempotency-Key", "message": str(_l("required"))}],
        )
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiProblem(
            400,
            "idempotency-key-invalid",
            _l("Invalid Idempotency-Key"),
            _l("The Idempotency-Key is 1 to 200 printable ASCII characters without spaces."),
            errors=[{"field": "Idempotency-Key", "message": str(_l("invalid"))}],
        )
    return key


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


@bp.post("/ingest/<source>")
def ingest(source: str) -> Response:
    """Push a batch: ``{"records": [...]}`` with an ``Idempotency-Key`` header.

    201 with the batch id and counts (rejected rows with line, field and message); the same
    key and body again → the same answer (``Idempotent-Replayed: true``), nothing written;
    the same key with another body → 409."""
    _refuse_query_credentials()
    client = _client_for(source)
    key = _idempotency_key()
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
