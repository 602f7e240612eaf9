"""``Idempotency-Key`` on every POST of the bank API, with Stripe's semantics.

The key's row is inserted and committed *before* the work (unique per client and key), so
of concurrent retries exactly one does the work; the others wait for its response
(``IDEMPOTENCY_WAIT_SECONDS``) and replay it, or get 409 "in progress". The first response —
success or problem, except a server error — is stored with the work in one commit and
replayed to every retry with ``Idempotent-Replayed: true``; the same key with a different
method, path or body is a 409. (Provider pushes keep their own batch-level keys:
:mod:`app.services.ingestion`.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, request
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from app.api.errors import ApiProblem
from app.api.spec import response_of
from models import db
from models.base import utcnow
from models.provider import IdempotentRequest, ProviderClient

KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces


_MISSING = _l("Send an Idempotency-Key header, unique per change, so a retry cannot act twice.")


def key_of_request(missing_detail: Any = None) -> str:
    """The request's ``Idempotency-Key``; a missing or malformed one is a 400 problem
    (``missing_detail`` says what the key is unique per, for this endpoint)."""
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        raise ApiProblem(
            400,
            "idempotency-key-missing",
            _l("Idempotency-Key missing"),
            missing_detail
            or _l(
                "Send an Idempotency-Key header, unique per change, so a retry cannot act twice."
            ),
            errors=[{"field": "Idempotency-Key", "message": str(_l("required"))}],
        )
    if not KEY.match(key):
        raise ApiProblem(
            400,
            "idempotency-key-invalid",
            _l("Invalid Idempotency-Key"),
            _l("The Idempotency-Key is 1 to 200 printable ASCII characters without spaces."),
            errors=[{"field": "Idempotency-Key", "message": str(_l("invalid"))}],
        )
    return key


def fingerprint() -> str:
    raw = request.get_data(cache=True)
    return hashlib.sha256(
        request.method.encode() + b" " + request.path.encode() + b"\n" + raw
    ).hexdigest()


def _reused() -> ApiProblem:
    return ApiProblem(
        409,
        "idempotency-key-reused",
        _l("Idempotency-Key reused"),
        _l(
            "This Idempotency-Key was used for a different request. Use a new key for a new "
            "change; resend exactly the same request to get its result again."
        ),
        errors=[{"field": "Idempotency-Key", "message": str(_l("already used"))}],
    )


def _in_progress() -> ApiProblem:
    return ApiProblem(
        409,
        "idempotency-key-in-progress",
        _l("Request in progress"),
        _l("A request with this Idempotency-Key is still being processed; retry shortly."),
        headers={"Retry-After": "1"},
    )


def _replay(row: IdempotentRequest) -> Response:
    response = response_of(row.status_code or 500, json.loads(row.response_body or "null"))
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _existing(client: ProviderClient, key: str, print_: str) -> Response:
    """A retry: wait for the first request's answer, then replay it (or 409)."""
    wait = float(current_app.config.get("IDEMPOTENCY_WAIT_SECONDS", 10))
    deadline = time.monotonic() + wait
    while True:
        db.session.rollback()  # a fresh snapshot each time
        row = db.session.scalar(
            sa.select(IdempotentRequest).where(
                IdempotentRequest.client_pk == client.id, IdempotentRequest.key == key
            )
        )
        if row is None:  # the first attempt failed with a server error and let go of the key
            raise _in_progress()
        if row.fingerprint != print_:
            raise _reused()
        if row.status_code is not None:
            return _replay(row)
        if time.monotonic() >= deadline:
            raise _in_progress()
        time.sleep(0.05)


def _reclaim_abandoned(client_pk: int, key: str, print_: str) -> bool:
    """A first attempt still "in progress" after ``IDEMPOTENCY_ABANDON_SECONDS`` (default
    300) died with its process: its changes were never committed (they commit with the
    stored response), so the same request may take the key over. Returns True if it did."""
    limit = utcnow() - dt.timedelta(
        seconds=float(current_app.config.get("IDEMPOTENCY_ABANDON_SECONDS", 300))
    )
    result = db.session.execute(
        sa.delete(IdempotentRequest).where(
            IdempotentRequest.client_pk == client_pk,
            IdempotentRequest.key == key,
            IdempotentRequest.fingerprint == print_,
            IdempotentRequest.status_code.is_(None),
            IdempotentRequest.created_at < limit,
        )
    )
    db.session.commit()
    return int(getattr(result, "rowcount", 0) or 0) == 1


def execute(client: ProviderClient, run: Callable[[], tuple[int, Any]]) -> Response:
    """Run ``run`` (which returns status and JSON payload and flushes its changes) at most
    once per (client, key); commit its changes together with the stored response."""
    key = key_of_request()
    print_ = fingerprint()
    client_pk = client.id
    for attempt in (1, 2):
        try:
            db.session.add(IdempotentRequest(client_pk=client_pk, key=key, fingerprint=print_))
            db.session.commit()
            break
        except IntegrityError:
            db.session.rollback()
            if attempt == 1 and _reclaim_abandoned(client_pk, key, print_):
                continue
            return _existing(client, key, print_)

    def finish(status: int, payload: Any) -> None:
        db.session.execute(
            sa.update(IdempotentRequest)
            .where(IdempotentRequest.client_pk == client_pk, IdempotentRequest.key == key)
            .values(
                status_code=status,
                response_body=json.dumps(payload, ensure_ascii=False),
                completed_at=utcnow(),
            )
        )
        db.session.commit()

    try:
        status, payload = run()
    except ApiProblem as problem:
        db.session.rollback()
        body = problem.response().get_json()
        finish(problem.status, body)
        raise
    except Exception:
        # A server error is not an answer: let go of the key so a retry may run.
        db.session.rollback()
        db.session.execute(
            sa.delete(IdempotentRequest).where(
                IdempotentRequest.client_pk == client_pk, IdempotentRequest.key == key
            )
        )
        db.session.commit()
        raise
    finish(status, payload)
    return response_of(status, payload)
