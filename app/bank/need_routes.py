"""Financing needs open to this bank, and taking one (抢单)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.bank import bp
from app.extensions import db
from app.forms import ConfirmForm
from app.services import authorization, needs, products
from app.services.accounts import AccountError, PermissionRefused
from app.services.authorization import Action
from app.services.paging import page_of_list
from models import FinancingNeed


@bp.get("/needs")
def need_list() -> Any:
    """Needs whose enterprise shared its profile and that fit one of this bank's products,
    oldest first, 50 a page."""
    found = page_of_list(needs.visible_to_bank(current_user), request.args.get("page", 1, type=int))
    return render_template("bank/needs.html", rows=found.items, found=found, form=ConfirmForm())


@bp.post("/needs/<int:need_id>/take")
def need_take(need_id: int) -> Response:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    need = db.session.get(FinancingNeed, need_id)
    product_id = request.form.get("product_id", "")
    product = products.get_own(current_user, int(product_id)) if product_id.isdigit() else None
    if (
        need is None
        or not authorization.decide(
            current_user.organization, Action.VIEW_PROFILE, need.enterprise
        ).allowed
    ):
        # Not shared with this bank: the same 404 as a need that does not exist, before any
        # other check whose message would tell the two apart.
        abort(404)
    if product is None:
        flash(_("Choose one of your published products."), "error")
        return redirect(url_for("bank.need_list"))
    try:
        app = needs.take(current_user, need, product)
    except PermissionRefused:
        db.session.rollback()
        abort(404)  # not open to this bank: indistinguishable from a need that does not exist
    except AccountError as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
        return redirect(url_for("bank.need_list"))
    db.session.commit()
    flash(_("You took the need. Answer by the deadline shown."), "success")
    return redirect(url_for("bank.application_detail", application_id=app.id))
