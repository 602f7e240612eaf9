"""The product supermarket and the enterprise's explained matches."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, render_template, request
from flask_login import current_user

from app.bank.forms import REPAYMENT_LABELS, TYPE_LABELS
from app.enterprise import bp
from app.forms import ConfirmForm
from app.services import applications, enterprises, matching, products
from models import LoanProduct, ProductStatus, db


def _filters() -> tuple[products.Filters, dict[str, str]]:
    args = {k: request.args.get(k, "").strip() for k in ("type", "amount", "term", "pool")}
    amount = term = None
    try:
        amount = Decimal(args["amount"]) * 10_000 if args["amount"] else None
    except InvalidOperation:
        args["amount"] = ""
    if args["term"].isdigit():
        term = int(args["term"])
    product_type = args["type"] if args["type"] in {t.value for t in TYPE_LABELS} else None
    return products.Filters(product_type, amount, term, None, args["pool"] == "1"), args


@bp.get("/products")
def supermarket() -> Any:
    """Every published product, the enterprise's eligibility for each explained."""
    filters, args = _filters()
    enterprise = enterprises.enterprise_of(current_user)
    matches = matching.explain(enterprise, products.published(filters))
    template = (
        "enterprise/_matches.html"
        if request.headers.get("HX-Request")
        else "enterprise/products.html"
    )
    return render_template(
        template,
        matches=matches,
        args=args,
        type_labels=TYPE_LABELS,
        eligible_count=sum(m.eligible for m in matches),
    )


def published_or_404(product_id: int) -> LoanProduct:
    product = db.session.get(LoanProduct, product_id)
    if product is None or product.status is not ProductStatus.PUBLISHED:
        abort(404)
    return product


def render_product(
    product: LoanProduct,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
) -> str:
    """The product page: terms, each rule explained for this enterprise, the apply form
    (with the errors and values of a refused attempt)."""
    enterprise = enterprises.enterprise_of(current_user)
    return render_template(
        "enterprise/product.html",
        match=matching.explain(enterprise, [product])[0],
        product=product,
        type_labels=TYPE_LABELS,
        repayment_labels=REPAYMENT_LABELS,
        apply_errors=errors or {},
        apply_values=values or {},
        apply_form=ConfirmForm(),
        sharing_days=applications.SHARING_DAYS,
    )


@bp.get("/products/<int:product_id>")
def product_detail(product_id: int) -> Any:
    return render_product(published_or_404(product_id))
