"""``GET /api/v1/profiles`` pages through the bank's prospect list kept by the web process
(``bank_views.prospect_slice``): the pages of one list, in its order, matched once; the
filters as the bank asked; and never an enterprise without a live grant."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import authorization as authz
from app.services import bank_views
from models import Authorization, Enterprise, SizeClass, User
from tests.api.conftest import World, bearer, enterprise_of, share, token_for
from tests.web.test_matches import _product

# (region, industry, size) of the enterprises that share with bank A besides the world's.
SHARERS = [
    ("350102", "C13", SizeClass.SMALL),
    ("350103", "C13", SizeClass.MICRO),
    ("350203", "F51", SizeClass.MICRO),
    ("440305", "C39", SizeClass.SMALL),
    ("440306", "F52", SizeClass.MEDIUM),
    ("350102", "I65", SizeClass.MEDIUM),
    ("350104", "C13", SizeClass.SMALL),
]


@pytest.fixture
def listed(app_ctx: Any, factory: Any, world: World) -> tuple[World, str, Any]:
    """The world, with seven more enterprises sharing with bank A (this bank, or every
    bank, in turn), and bank A's two more products of one name: one for micro enterprises,
    one for small ones. Returns the world, A's token and a client."""
    for k, (region, industry, size) in enumerate(SHARERS):
        db.session.commit()  # the factory writes in a session of its own
        account = factory.enterprise()
        enterprise = enterprise_of(account)
        enterprise.region_code, enterprise.industry_code = region, industry
        enterprise.size_class = size
        sme = db.session.get(User, account.user_id)
        assert sme is not None
        share(sme, enterprise, world.bank.org_id if k % 2 else None)
    _product(world.bank.admin, name="小微同名贷", size_classes=("micro",))
    _product(world.bank.admin, name="小微同名贷", size_classes=("small",))
    db.session.commit()
    app_ctx.extensions.pop(bank_views.KEPT_LISTS, None)
    client = app_ctx.test_client()
    return world, token_for(client, world.bank.creds), client


def _expected(world: World, keep: Any = lambda p: True) -> list[tuple[int, list[int]]]:
    """What the list page would show, filtered as the old per-request matching did."""
    everyone = bank_views.prospects(world.bank.admin)
    return [
        (p.enterprise.id, [product.id for product in p.matching_products])
        for p in everyone
        if keep(p)
    ]


def _get(client: Any, token: str, query: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/profiles?{query}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _items(body: dict[str, Any]) -> list[tuple[int, list[int]]]:
    return [(i["enterprise"]["id"], i["matching_product_ids"]) for i in body["items"]]


def test_paging_through_the_profiles_matches_the_list_once_and_keeps_its_order(listed):
    world, token, client = listed
    pages = [_get(client, token, f"per_page=3&page={n}") for n in (1, 2, 3, 4)]
    assert bank_views.kept_prospect_lists().built == 1  # one matching for the four pages
    expected = _expected(world)
    assert len(expected) == 8  # the world's authorized enterprise and the seven
    assert [item for page in pages for item in _items(page)] == expected
    assert [page["page"]["total"] for page in pages] == [8, 8, 8, 8]
    assert [len(page["items"]) for page in pages] == [3, 3, 2, 0]


def test_two_products_of_one_name_keep_their_own_ids(listed):
    world, token, client = listed
    micro = set(
        db.session.scalars(sa.select(Enterprise.id).where(Enterprise.size_class == "micro"))
    )
    by_id = dict(_items(_get(client, token, "per_page=50")))
    micro_ids = {eid: ids for eid, ids in by_id.items() if eid in micro}
    small_ids = {eid: ids for eid, ids in by_id.items() if eid not in micro and ids}
    # Prospects qualifying for products of the same names, but not the same products.
    assert micro_ids and small_ids
    assert {tuple(ids) for ids in micro_ids.values()}.isdisjoint(
        tuple(ids) for ids in small_ids.values()
    )
    assert by_id == dict(_expected(world))


@pytest.mark.parametrize(
    "query,keep",
    [
        ("region=35", lambda p: p.enterprise.region_code.startswith("35")),
        ("region=350102", lambda p: p.enterprise.region_code == "350102"),
        ("industry=C", lambda p: p.enterprise.industry_code.startswith("C")),
        ("industry=C13", lambda p: p.enterprise.industry_code == "C13"),
        ("eligible_only=true", lambda p: bool(p.matching_products)),
        (
            "region=3501&industry=C&eligible_only=true",
            lambda p: (
                p.enterprise.region_code.startswith("3501")
                and p.enterprise.industry_code.startswith("C")
                and bool(p.matching_products)
            ),
        ),
        ("region=12", lambda p: False),
    ],
)
def test_the_filters_pick_what_they_name_in_the_lists_order(listed, query, keep):
    world, token, client = listed
    first = _get(client, token, f"{query}&per_page=2&page=1")
    rest = _get(client, token, f"{query}&per_page=2&page=2")
    expected = _expected(world, keep)
    assert first["page"]["total"] == len(expected)
    assert _items(first) + _items(rest) == expected[:4]
    assert bank_views.kept_prospect_lists().built == 1  # filters reuse the one list


def _revoke_first(world: World) -> int:
    """Revokes the sharing grant of the first enterprise the API lists; returns its id."""
    first = _expected(world)[0][0]
    grant = db.session.scalar(sa.select(Authorization).where(Authorization.enterprise_id == first))
    assert grant is not None
    owner = db.session.get(User, grant.granted_by_user_id)
    assert owner is not None
    authz.revoke(owner, grant)
    db.session.commit()
    return first


def test_a_revocation_bites_on_the_next_api_request(listed):
    world, token, client = listed
    before = _get(client, token, "per_page=50")
    gone = _revoke_first(world)
    after = _get(client, token, "per_page=50")
    assert gone in dict(_items(before)) and gone not in dict(_items(after))
    assert after["page"]["total"] == before["page"]["total"] - 1


def test_live_grants_apply_even_if_the_epoch_missed_the_revocation(listed, monkeypatch):
    """Were a change ever to leave the epoch as it was, the slice's enterprises would still
    be read through the live grants, and the kept list matched again: neither the item nor
    the total shows the enterprise."""
    world, token, client = listed
    monkeypatch.setattr(bank_views, "match_epoch", lambda: ((7, 7), False))
    before = _get(client, token, "per_page=3")
    gone = _revoke_first(world)
    after = _get(client, token, "per_page=3")
    assert gone in dict(_items(before)) and gone not in dict(_items(after))
    assert after["page"]["total"] == before["page"]["total"] - 1 and len(after["items"]) == 3
    assert bank_views.kept_prospect_lists().built == 2
