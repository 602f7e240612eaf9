"""The bank's pages: home and its loan products."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.access import role_required
from app.bank import bp
from app.bank.forms import REPAYMENT_LABELS, TYPE_LABELS, ProductForm
from app.extensions import db
from app.forms import ConfirmForm, show_error
from app.services import bank_views, enterprises, matching, organizations, products
from app.services.accounts import AccountError, PermissionRefused
from models import LoanProduct, ProductStatus, Role


@bp.get("/")
def home() -> Any:
    return render_template(
        "bank/home.html",
        organization=current_user.organization,
        colleagues=organizations.users_of(current_user, current_user.organization),
    )


@bp.get("/products")
def product_list() -> Any:
    return render_template(
        "bank/products.html",
        products=products.bank_products(current_user),
        type_labels=TYPE_LABELS,
        action_form=ConfirmForm(),
    )


def _own(product_id: int) -> LoanProduct:
    product = products.get_own(current_user, product_id)
    if product is None:
        abort(404)
    return product


def _save(form: ProductForm, product: LoanProduct | None) -> LoanProduct | None:
    try:
        if product is None:
            product = products.create_draft(current_user, form.terms())
        else:
            products.update_draft(current_user, product, form.terms())
    except AccountError as exc:
        db.session.rollback()
        if not show_error(form, exc.field, exc.message):
            flash(str(exc.message), "error")
        return None
    db.session.commit()
    return product


@bp.route("/products/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def product_new() -> Any:
    form = ProductForm()
    if form.validate_on_submit():
        product = _save(form, None)
        if product is not None:
            flash(_("Draft saved. Check it, then publish it."), "success")
            return redirect(url_for("bank.product_edit", product_id=product.id))
    return render_template("bank/product_form.html", form=form, product=None), (
        422 if form.errors else 200
    )


@bp.route("/products/<int:product_id>", methods=["GET", "POST"])
def product_edit(product_id: int) -> Any:
    product = _own(product_id)
    form = ProductForm()
    if product.status is ProductStatus.DRAFT and form.validate_on_submit():
        if current_user.role is not Role.ADMIN:
            abort(403)
        if _save(form, product) is not None:
            flash(_("Draft saved."), "success")
            return redirect(url_for("bank.product_edit", product_id=product.id))
    elif not form.is_submitted():
        form.load(products.terms_of(product))
    return render_template(
        "bank/product_form.html",
        form=form,
        product=product,
        action_form=ConfirmForm(),
        repayment_labels=REPAYMENT_LABELS,
    ), (422 if form.errors else 200)


@bp.post("/products/<int:product_id>/<any(publish, retire, revise):change>")
@role_required(Role.ADMIN)
def product_change(product_id: int, change: str) -> Response:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    product = _own(product_id)
    target = product
    try:
        if change == "publish":
            products.publish(current_user, product)
            message = _("Published: enterprises can see and apply for it now.")
        elif change == "retire":
            products.retire(current_user, product)
            message = _("Retired: no new applications. Open applications continue.")
        else:
            target = products.revise(current_user, product)
            message = _("A revised draft was created; publish it, then retire the old version.")
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
        return redirect(url_for("bank.product_edit", product_id=product.id))
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("bank.product_edit", product_id=target.id))


@bp.get("/prospects")
def prospect_list() -> Any:
    """Enterprises that shared their profile with this bank, and which products they match,
    a page at a time (those qualifying for most products first)."""
    listing = bank_views.prospect_page(current_user, request.args.get("page", 1, type=int) or 1)
    # One profile URL built, the others after it (…/enterprises/<id>): url_for costs about
    # 5 µs, fifty times a page.
    prefix = url_for("bank.enterprise_profile", enterprise_id=0).removesuffix("/0")
    return render_template(
        "bank/prospects.html",
        prospects=listing.prospects,
        rows=bank_views.prospect_rows(
            listing.prospects,
            lambda enterprise_id: f"{prefix}/{enterprise_id}",
            {size: str(label) for size, label in matching.SIZE_LABELS.items()},
            _("none yet"),
        ),
        total=listing.total,
        qualified=listing.qualified,
        page=listing.page,
        pages=listing.pages,
    )


@bp.get("/enterprises/<int:enterprise_id>")
def enterprise_profile(enterprise_id: int) -> Any:
    try:
        page = bank_views.show_profile(
            current_user,
            enterprise_id,
            lambda view: render_template(
                "bank/enterprise.html",
                view=view,
                headings=bank_views.record_headings(str(get_locale())),
                industry=enterprises.industry_label(view.enterprise.industry_code),
            ),
        )
    except bank_views.NotVisible:
        db.session.rollback()
        abort(404)
    db.session.commit()  # the use count and the audit events of this view, before it is sent
    return page
