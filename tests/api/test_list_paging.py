"""``GET /loans`` and ``GET /applications`` read a page at a time in SQL: the requested
page, the total, the status filter in the query; past the last page, no items."""

from __future__ import annotations

from typing import Any

from app.extensions import db
from models import LoanProduct
from tests.api.conftest import World, bearer, token_for
from tests.services.pool_support import make_loan

LOANS = 25


def _lend(world: World) -> list[int]:
    product = db.session.get(LoanProduct, world.bank.product_id)
    ids = [make_loan(world.enterprises["authorized"].id, product).id for _ in range(LOANS)]
    db.session.commit()
    return ids


def _get(client: Any, token: str, path: str) -> dict[str, Any]:
    response = client.get(path, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_loans_come_a_page_at_a_time_with_the_total(app_ctx, client, world):
    ids = _lend(world)
    token = token_for(client, world.bank.creds)
    pages = [_get(client, token, f"/api/v1/loans?per_page=10&page={n}") for n in (1, 2, 3, 4)]
    seen = [loan["id"] for page in pages for loan in page["items"]]
    assert seen == sorted(ids, reverse=True)  # disbursed the same day: the newest id first
    assert [len(page["items"]) for page in pages] == [10, 10, 5, 0]
    assert {page["page"]["total"] for page in pages} == {LOANS}


def test_the_status_filter_is_counted_in_the_total(app_ctx, client, world):
    _lend(world)
    token = token_for(client, world.bank.creds)
    disbursed = _get(client, token, "/api/v1/applications?status=disbursed&per_page=200")
    submitted = _get(client, token, "/api/v1/applications?status=submitted&per_page=200")
    everything = _get(client, token, "/api/v1/applications?per_page=200")
    assert disbursed["page"]["total"] == LOANS == len(disbursed["items"])
    assert {a["status"] for a in disbursed["items"]} == {"disbursed"}
    assert {a["status"] for a in submitted["items"]} <= {"submitted"}
    assert submitted["page"]["total"] == len(submitted["items"]) >= 1
    assert everything["page"]["total"] == len(everything["items"]) > LOANS
