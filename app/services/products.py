"""Banks' loan products: drafts, publication, retirement and revision.

Rules are validated when saved, so a product can never hold contradictory rules (a
minimum above a maximum, an unknown grade, a region that is not a GB/T 2260 prefix).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from app.services import audit
from app.services.accounts import AccountError, PermissionRefused
from app.services.matching_engine import PUBLIC_CLASSES, SIZE_CLASSES
from ml.grades import load_grade_scale
from models import LoanProduct, OrgKind, ProductStatus, ProductType, RepaymentMethod, Role, User, db
from models.authorization import SCOPES
from models.base import utcnow
from models.codes import PROVINCE_PREFIXES, industry_divisions


@functools.cache
def _grades() -> tuple[str, ...]:
    return tuple(load_grade_scale().grades)


def grades() -> list[str]:
    """Grade names from best to worst (the model's PD band table, read once)."""
    return list(_grades())


@dataclass
class ProductTerms:
    name: str
    product_type: ProductType
    amount_min: Decimal
    amount_max: Decimal
    term_min_months: int
    term_max_months: int
    rate_min: Decimal
    rate_max: Decimal
    repayment_method: RepaymentMethod
    response_days: int
    description: str = ""
    upfront_fee_pct: Decimal = Decimal(0)
    min_grade: str | None = None
    public_credit_classes: tuple[str, ...] = ()
    min_years_operating: Decimal | None = None
    min_annual_sales: Decimal | None = None
    min_tax_months: int | None = None
    min_social_months: int | None = None
    industries_allowed: tuple[str, ...] = ()
    industries_excluded: tuple[str, ...] = ()
    regions_allowed: tuple[str, ...] = ()
    regions_excluded: tuple[str, ...] = ()
    size_classes: tuple[str, ...] = ()
    required_scopes: tuple[str, ...] = ()
    pool_participation: bool = False


def _check_industry(code: str) -> bool:
    divisions = industry_divisions()
    if re.fullmatch(r"[A-T]", code):
        return any(d.section == code for d in divisions.values())
    return code in divisions


def _check_region(prefix: str) -> bool:
    return bool(re.fullmatch(r"\d{2}(\d{2}){0,2}", prefix)) and prefix[:2] in PROVINCE_PREFIXES


def validate(terms: ProductTerms) -> None:
    """Raise :class:`AccountError` naming the first field that is wrong."""

    def fail(field: str, message: object) -> None:
        raise AccountError(message, field=field)

    if not terms.name.strip():
        fail("name", _l("Enter a name."))
    if terms.amount_min <= 0:
        fail("amount_min", _l("Amounts must be positive."))
    if terms.amount_max < terms.amount_min:
        fail("amount_max", _l("The maximum cannot be below the minimum."))
    if terms.term_min_months <= 0:
        fail("term_min_months", _l("A term is at least one month."))
    if terms.term_max_months < terms.term_min_months:
        fail("term_max_months", _l("The maximum cannot be below the minimum."))
    if terms.rate_min <= 0 or terms.rate_max > 36:
        fail("rate_min", _l("An annual rate is above 0 and at most 36 percent."))
    if terms.rate_max < terms.rate_min:
        fail("rate_max", _l("The maximum cannot be below the minimum."))
    if not 0 <= terms.upfront_fee_pct <= 10:
        fail("upfront_fee_pct", _l("The fee is between 0 and 10 percent of the amount."))
    if not 1 <= terms.response_days <= 60:
        fail("response_days", _l("The response deadline is 1 to 60 working days."))
    validate_rules(terms)


def validate_rules(terms: Any) -> None:
    """The eligibility rules of ``terms`` (ProductTerms' rule fields, codes as tuples; also
    used for support policies): raise :class:`AccountError` naming the first wrong field."""

    def fail(field: str, message: object) -> None:
        raise AccountError(message, field=field)

    if terms.min_grade is not None and terms.min_grade not in grades():
        fail("min_grade", _l("Unknown grade %(g)s.", g=terms.min_grade))
    if any(c not in PUBLIC_CLASSES for c in terms.public_credit_classes):
        fail("public_credit_classes", _l("Public-credit classes are A, B, C and D."))
    for name in ("min_years_operating", "min_annual_sales", "min_tax_months", "min_social_months"):
        value = getattr(terms, name)
        if value is not None and value < 0:
            fail(name, _l("A minimum cannot be negative."))
    for name in ("min_tax_months", "min_social_months"):
        value = getattr(terms, name)
        if value is not None and value > 120:
            fail(name, _l("At most 120 months."))
    for name in ("industries_allowed", "industries_excluded"):
        bad = [c for c in getattr(terms, name) if not _check_industry(c)]
        if bad:
            fail(
                name,
                _l("Not GB/T 4754-2017 sections or divisions: %(codes)s.", codes=", ".join(bad)),
            )
    overlap = set(terms.industries_allowed) & set(terms.industries_excluded)
    if overlap:
        fail(
            "industries_excluded",
            _l("Allowed and excluded at once: %(codes)s.", codes=", ".join(sorted(overlap))),
        )
    for name in ("regions_allowed", "regions_excluded"):
        bad = [c for c in getattr(terms, name) if not _check_region(c)]
        if bad:
            fail(
                name,
                _l(
                    "Not GB/T 2260 region prefixes (2, 4 or 6 digits): %(codes)s.",
                    codes=", ".join(bad),
                ),
            )
    overlap = set(terms.regions_allowed) & set(terms.regions_excluded)
    if overlap:
        fail(
            "regions_excluded",
            _l("Allowed and excluded at once: %(codes)s.", codes=", ".join(sorted(overlap))),
        )
    if any(s not in SIZE_CLASSES for s in terms.size_classes):
        fail("size_classes", _l("Unknown size class."))
    if any(s not in SCOPES for s in terms.required_scopes):
        fail("required_scopes", _l("Unknown data scope."))


def _require_bank_admin(actor: User, product: LoanProduct | None = None) -> None:
    if actor.org_kind is not OrgKind.BANK or actor.role is not Role.ADMIN:
        raise PermissionRefused(_l("Only a bank's administrators manage its products."))
    if product is not None and product.bank_org_id != actor.organization_id:
        raise PermissionRefused(_l("This product belongs to another bank."))


def _apply(product: LoanProduct, terms: ProductTerms) -> None:
    for f in fields(ProductTerms):
        value = getattr(terms, f.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        setattr(product, f.name, value)


def create_draft(actor: User, terms: ProductTerms) -> LoanProduct:
    _require_bank_admin(actor)
    validate(terms)
    product = LoanProduct(bank_org_id=actor.organization_id, status=ProductStatus.DRAFT)
    _apply(product, terms)
    db.session.add(product)
    db.session.flush()
    return product


def update_draft(actor: User, product: LoanProduct, terms: ProductTerms) -> None:
    _require_bank_admin(actor, product)
    if product.status is not ProductStatus.DRAFT:
        raise AccountError(
            _l("A published product cannot be edited: retire it and publish a revised copy.")
        )
    validate(terms)
    _apply(product, terms)
    db.session.flush()


def terms_of(product: LoanProduct) -> ProductTerms:
    values = {}
    for f in fields(ProductTerms):
        value = getattr(product, f.name)
        if f.name in {
            "public_credit_classes",
            "industries_allowed",
            "industries_excluded",
            "regions_allowed",
            "regions_excluded",
            "size_classes",
            "required_scopes",
        }:
            value = tuple(LoanProduct.split(value))
        values[f.name] = value
    return ProductTerms(**values)


def publish(actor: User, product: LoanProduct, now: dt.datetime | None = None) -> None:
    _require_bank_admin(actor, product)
    if product.status is not ProductStatus.DRAFT:
        raise AccountError(_l("Only a draft can be published."))
    validate(terms_of(product))
    product.status = ProductStatus.PUBLISHED
    product.published_at = now or utcnow()
    db.session.flush()
    audit.record("product.publish", actor=actor, object_type="product", object_id=product.id)


def retire(actor: User, product: LoanProduct, now: dt.datetime | None = None) -> None:
    _require_bank_admin(actor, product)
    if product.status is ProductStatus.RETIRED:
        return
    product.status = ProductStatus.RETIRED
    product.retired_at = now or utcnow()
    db.session.flush()
    audit.record("product.retire", actor=actor, object_type="product", object_id=product.id)


def revise(actor: User, product: LoanProduct) -> LoanProduct:
    """A new draft copying a product's terms, to change what is published."""
    _require_bank_admin(actor, product)
    draft = create_draft(actor, terms_of(product))
    draft.revised_from_id = product.id
    db.session.flush()
    return draft


def bank_products(actor: User) -> list[LoanProduct]:
    if actor.org_kind is not OrgKind.BANK:
        raise PermissionRefused(_l("Only banks have products."))
    return list(
        db.session.scalars(
            sa.select(LoanProduct)
            .where(LoanProduct.bank_org_id == actor.organization_id)
            .order_by(LoanProduct.status, LoanProduct.created_at.desc())
        )
    )


def get_own(actor: User, product_id: int) -> LoanProduct | None:
    product = db.session.get(LoanProduct, product_id)
    if product is None or product.bank_org_id != actor.organization_id:
        return None
    return product


@dataclass(frozen=True)
class Filters:
    product_type: str | None = None
    amount: Decimal | None = None  # CNY wanted
    term_months: int | None = None
    bank_org_id: int | None = None
    pool_only: bool = False


def published(filters: Filters | None = None) -> list[LoanProduct]:
    """The product supermarket: every published product, filtered."""
    filters = filters or Filters()
    stmt = sa.select(LoanProduct).where(LoanProduct.status == ProductStatus.PUBLISHED)
    if filters.product_type:
        stmt = stmt.where(LoanProduct.product_type == filters.product_type)
    if filters.amount is not None:
        stmt = stmt.where(
            LoanProduct.amount_min <= filters.amount, LoanProduct.amount_max >= filters.amount
        )
    if filters.term_months is not None:
        stmt = stmt.where(
            LoanProduct.term_min_months <= filters.term_months,
            LoanProduct.term_max_months >= filters.term_months,
        )
    if filters.bank_org_id is not None:
        stmt = stmt.where(LoanProduct.bank_org_id == filters.bank_org_id)
    if filters.pool_only:
        stmt = stmt.where(LoanProduct.pool_participation.is_(True))
    return list(db.session.scalars(stmt.order_by(LoanProduct.rate_min, LoanProduct.id)))


def published_by(bank_org_id: int) -> list[LoanProduct]:
    """One bank's published products, as :func:`published` with only ``bank_org_id`` set
    returns them; the statement is built once (the prospect list asks on every request)."""
    return list(db.session.scalars(_published_by(), {"bank_org_id": bank_org_id}))


@functools.cache
def _published_by() -> sa.Select[LoanProduct]:
    return (
        sa.select(LoanProduct)
        .where(
            LoanProduct.status == ProductStatus.PUBLISHED,
            LoanProduct.bank_org_id == sa.bindparam("bank_org_id"),
        )
        .order_by(LoanProduct.rate_min, LoanProduct.id)
        # Read afresh even if the session holds the products already: the prospect list
        # kept under the match epoch read before must not be matched on older rules.
        .execution_options(populate_existing=True)
    )
