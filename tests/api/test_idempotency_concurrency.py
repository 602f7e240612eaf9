"""Idempotency-Key under concurrent retries on PostgreSQL: eight threads send the same
decision with the same key at once — one offer is made, every other thread gets its replay
or 409 "in progress"; the same key with another body is a 409."""

from __future__ import annotations

import threading
import uuid

import sqlalchemy as sa
from flask_babel import force_locale

from app.extensions import db
from models import AuditEvent, IdempotentRequest, LoanApplication, User
from tests.api.conftest import apply, bearer, make_bank, token_for
from tests.api.test_bank_api import OFFER
from tests.conftest import Factory


def test_eight_concurrent_retries_make_one_offer(pg_app):
    factory = Factory(pg_app)
    with pg_app.app_context(), force_locale("en"):
        bank = make_bank(factory, "并发银行")
        sme = db.session.get(User, factory.enterprise().user_id)
        from models import LoanProduct

        app_id = apply(sme, db.session.get(LoanProduct, bank.product_id)).id
        db.session.commit()
        token = token_for(pg_app.test_client(), bank.creds)
    key = uuid.uuid4().hex
    path = f"/api/v1/applications/{app_id}/decision"
    results: list[tuple[int, bool, dict]] = []
    barrier = threading.Barrier(8)

    def retry() -> None:
        http = pg_app.test_client()
        barrier.wait()
        response = http.post(path, json=OFFER, headers={**bearer(token), "Idempotency-Key": key})
        results.append(
            (
                response.status_code,
                response.headers.get("Idempotent-Replayed") == "true",
                response.get_json(),
            )
        )

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    firsts = [r for r in results if r[0] == 200 and not r[1]]
    assert len(firsts) == 1
    for status, replayed, body in [r for r in results if r is not firsts[0]]:
        assert (status == 200 and replayed and body == firsts[0][2]) or (
            status == 409 and body["type"].endswith("in-progress")
        ), (status, body)
    with pg_app.app_context():
        offered = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "application.offered")
        ).all()
        assert len(offered) == 1
        assert db.session.get(LoanApplication, app_id).status.value == "offered"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(IdempotentRequest)) == 1
        http = pg_app.test_client()
        other = http.post(
            path, json={**OFFER, "rate": "5.5"}, headers={**bearer(token), "Idempotency-Key": key}
        )
        assert other.status_code == 409
        assert other.get_json()["type"].endswith("idempotency-key-reused")
