"""A bank with an API client, enterprises that shared with it (or not), a product and
applications — for the bank API's tests."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from app.api import clients
from app.extensions import db
from app.services import applications, products
from app.services import authorization as authz
from app.services.authorization import GrantRequest
from models import (
    Authorization,
    AuthorizationKind,
    Enterprise,
    LoanApplication,
    LoanProduct,
    Organization,
    OrgKind,
    ProductType,
    RepaymentMethod,
    User,
)
from models.provider import BANK_SCOPES

PROBLEM = "application/problem+json"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(http: Any, creds: tuple[str, str], scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    response = http.post("/api/v1/oauth/token", data=data, headers=basic(*creds))
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["access_token"])


def post(http: Any, path: str, token: str, body: Any = None, key: str | None = None) -> Any:
    headers = {**bearer(token), "Idempotency-Key": key or uuid.uuid4().hex}
    return http.post(path, json=body if body is not None else {}, headers=headers)


def enterprise_of(account: Any) -> Enterprise:
    found = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == account.organization_id)
    )
    assert found is not None
    return found


def share(sme: User, enterprise: Enterprise, bank_id: int | None, **kw: Any) -> int:
    grant = authz.grant(
        sme,
        enterprise,
        GrantRequest(
            kind=AuthorizationKind.SHARING,
            scopes=("tax",),
            grantee_org_id=bank_id,
            all_banks=bank_id is None,
            **kw,
        ),
    )
    db.session.flush()
    return grant.id


def make_product(bank_user: User, name: str = "信用快贷") -> Any:
    product = products.create_draft(
        bank_user,
        products.ProductTerms(
            name=name, product_type=ProductType.CREDIT, amount_min=Decimal("50000"),
            amount_max=Decimal("1000000"), term_min_months=3, term_max_months=24,
            rate_min=Decimal("3.5"), rate_max=Decimal("6.5"),
            repayment_method=RepaymentMethod.EQUAL_INSTALLMENT, response_days=5,
        ),
    )  # fmt: skip
    products.publish(bank_user, product)
    return product


def apply(sme: User, product: Any) -> LoanApplication:
    app = applications.create(sme, product, Decimal("300000"), 12, "采购原材料")
    applications.submit(sme, app, confirm_sharing=True)
    return app


@dataclass
class Bank:
    org_id: int
    admin: User
    creds: tuple[str, str]
    client_pk: int
    product_id: int


@dataclass
class World:
    bank: Bank
    other: Bank
    smes: dict[str, User] = field(default_factory=dict)
    enterprises: dict[str, Enterprise] = field(default_factory=dict)
    apps: dict[str, int] = field(default_factory=dict)


def make_bank(factory: Any, name: str, scopes: tuple[str, ...] = BANK_SCOPES) -> Bank:
    account = factory.user(OrgKind.BANK)
    admin = db.session.get(User, account.user_id)
    org = db.session.get(Organization, account.organization_id)
    assert admin is not None and org is not None
    product = make_product(admin, f"{name} 信用贷")
    issued = clients.create_bank_client(None, org, f"{name} loan system", list(scopes))
    db.session.commit()
    return Bank(
        org.id, admin, (issued.client.client_id, issued.client_secret), issued.client.id,
        product.id,
    )  # fmt: skip


@pytest.fixture
def world(app_ctx: Any, factory: Any) -> World:
    """Bank A (with its API client) and bank B; enterprises that shared with A (via an
    application), with nobody, with A but revoked, with A but expired, with B only."""
    bank, other = make_bank(factory, "甲银行"), make_bank(factory, "乙银行")
    w = World(bank, other)
    for kind in ("authorized", "never", "revoked", "expired", "other_only"):
        account = factory.enterprise()
        w.smes[kind] = db.session.get(User, account.user_id)  # type: ignore[assignment]
        w.enterprises[kind] = enterprise_of(account)
    product_a = db.session.get(LoanProduct, bank.product_id)
    product_b = db.session.get(LoanProduct, other.product_id)
    now = dt.datetime.now(dt.UTC)
    # Authorized: applied to A (the submission creates the sharing grant).
    w.apps["authorized"] = apply(w.smes["authorized"], product_a).id
    # Revoked: applied to A, then revoked the grant.
    app = apply(w.smes["revoked"], product_a)
    w.apps["revoked"] = app.id
    # Expired: applied to A long ago; the grant expired since.
    app = apply(w.smes["expired"], product_a)
    w.apps["expired"] = app.id
    # Never authorized: only a draft to A (not sent, so no grant).
    w.apps["never"] = applications.create(
        w.smes["never"], product_a, Decimal("300000"), 12, "周转"
    ).id
    # Other bank only: applied to B.
    w.apps["other_only"] = apply(w.smes["other_only"], product_b).id
    db.session.commit()
    for kind in ("revoked",):
        grant = db.session.get(
            Authorization, db.session.get(LoanApplication, w.apps[kind]).sharing_authorization_id
        )  # type: ignore[union-attr]
        authz.revoke(w.smes[kind], grant)
    grant = db.session.get(
        Authorization, db.session.get(LoanApplication, w.apps["expired"]).sharing_authorization_id
    )  # type: ignore[union-attr]
    grant.valid_from = now - dt.timedelta(days=200)  # type: ignore[union-attr]
    grant.valid_until = now - dt.timedelta(days=1)  # type: ignore[union-attr]
    db.session.commit()
    return w
