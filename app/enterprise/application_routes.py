"""The enterprise's applications: apply to a product, follow it, answer an offer."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.enterprise import bp
from app.enterprise.match_routes import published_or_404, render_product
from app.extensions import db
from app.forms import ConfirmForm
from app.services import applications, enterprises, matching, products
from app.services.accounts import AccountError, PermissionRefused
from models import ApplicationStatus, LoanApplication


def _own(application_id: int) -> LoanApplication:
    enterprise = enterprises.enterprise_of(current_user)
    app = db.session.get(LoanApplication, application_id)
    if app is None or app.enterprise_id != enterprise.id:
        abort(404)
    return app


@bp.post("/products/<int:product_id>/apply")
def apply(product_id: int) -> Any:
    product = published_or_404(product_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    errors: dict[str, str] = {}
    try:
        amount = Decimal(request.form.get("amount_wan", "").strip()) * 10_000
    except InvalidOperation:
        amount = Decimal(0)
        errors["amount"] = _("Enter the amount in 10,000 CNY, e.g. 50.")
    term = request.form.get("term_months", "").strip()
    if not term.isdigit():
        errors["term_months"] = _("Enter the term in months.")
    if not errors:
        try:
            app = applications.create(
                current_user, product, amount, int(term), request.form.get("purpose", "")
            )
            applications.submit(
                current_user,
                app,
                confirm_sharing=request.form.get("confirm_sharing") == "y",
                route_on_overdue=request.form.get("route_on_overdue") == "y",
            )
        except (AccountError, PermissionRefused) as exc:
            db.session.rollback()
            errors[exc.field or "form"] = str(exc.message)
        else:
            db.session.commit()
            flash(_("Application sent to %(bank)s.", bank=product.bank.name), "success")
            return redirect(url_for("enterprise.application_detail", application_id=app.id))
    return render_product(product, errors, request.form), 422


@bp.get("/applications")
def application_list() -> Any:
    return render_template(
        "enterprise/applications.html",
        applications=applications.for_enterprise(current_user),
        offers=applications.open_offers(current_user),
        labels=applications.STATUS_LABELS,
        action_form=ConfirmForm(),
    )


@bp.get("/applications/<int:application_id>")
def application_detail(application_id: int) -> Any:
    app = _own(application_id)
    offer = applications.offer_summary(app)
    alternatives = []
    if app.status is ApplicationStatus.REJECTED:
        enterprise = enterprises.enterprise_of(current_user)
        alternatives = [
            m.product
            for m in matching.explain(enterprise, products.published())
            if m.eligible and m.product.id != app.product_id
        ][:5]
    return render_template(
        "enterprise/application.html",
        app=app,
        offer=offer,
        alternatives=alternatives,
        labels=applications.STATUS_LABELS,
        reasons=applications.REJECTION_CODES,
        overdue=applications.is_overdue(app),
        successor=db.session.scalar(
            sa.select(LoanApplication).where(LoanApplication.routed_from_id == app.id)
        ),
        action_form=ConfirmForm(),
    )


@bp.post("/applications/<int:application_id>/<any(accept, decline, withdraw):change>")
def application_change(application_id: int, change: str) -> Response:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    app = _own(application_id)
    try:
        getattr(applications, change)(current_user, app)
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        flash(str(applications.STATUS_LABELS[app.status]), "success")
    return redirect(url_for("enterprise.application_detail", application_id=application_id))


@bp.post("/applications/<int:application_id>/route")
def application_route(application_id: int) -> Response:
    """The bank missed its deadline: send the application on to the next matching bank."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    app = _own(application_id)
    if request.form.get("confirm_sharing") != "y":
        flash(_("Confirm that the next bank may see your credit profile."), "error")
        return redirect(url_for("enterprise.application_detail", application_id=application_id))
    try:
        successor = applications.route(current_user, app)
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
        return redirect(url_for("enterprise.application_detail", application_id=application_id))
    db.session.commit()
    if successor is None:
        flash(_("No other bank has a product you qualify for; the application stays."), "error")
        return redirect(url_for("enterprise.application_detail", application_id=application_id))
    flash(_("Application sent to %(bank)s.", bank=successor.product.bank.name), "success")
    return redirect(url_for("enterprise.application_detail", application_id=successor.id))
