"""The enterprise's financing needs (融资需求): post one, follow it, withdraw it."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.enterprise import bp
from app.extensions import db
from app.forms import ConfirmForm
from app.services import applications, needs
from app.services.accounts import AccountError, PermissionRefused
from models import FinancingNeed

FIELDS = ("amount_wan", "term_months", "purpose", "max_rate", "valid_days")


def _render(errors: dict[str, str] | None = None, values: dict[str, str] | None = None) -> str:
    rows = needs.for_enterprise(current_user)
    apps = {
        a.need_id: a for a in applications.for_enterprise(current_user) if a.need_id is not None
    }
    return render_template(
        "enterprise/needs.html",
        needs=rows,
        apps=apps,
        labels=applications.STATUS_LABELS,
        is_open=needs.is_open,
        errors=errors or {},
        values=values or {"valid_days": str(needs.DEFAULT_DAYS)},
        form=ConfirmForm(),
        max_days=needs.MAX_DAYS,
    )


@bp.get("/needs")
def need_list() -> Any:
    return _render()


@bp.post("/needs")
def need_post() -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    values = {k: request.form.get(k, "") for k in (*FIELDS, "confirm_sharing")}
    try:
        terms = needs.parse_terms(*(values[k] for k in FIELDS))
        need = needs.post(current_user, terms, confirm_sharing=values["confirm_sharing"] == "y")
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        return _render({exc.field or "form": str(exc.message)}, values), 422
    db.session.commit()
    count = len({p.bank_org_id for p in needs.matching_products(need)})
    flash(_("Your need is posted. %(n)d bank(s) have a product that fits it.", n=count), "success")
    return redirect(url_for("enterprise.need_list"))


@bp.post("/needs/<int:need_id>/withdraw")
def need_withdraw(need_id: int) -> Response:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    need = db.session.get(FinancingNeed, need_id)
    if need is None:
        abort(404)
    try:
        needs.withdraw(current_user, need)
    except PermissionRefused:
        db.session.rollback()
        abort(404)
    except AccountError as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        flash(_("The need is withdrawn."), "success")
    return redirect(url_for("enterprise.need_list"))
