"""Applications addressed to the bank: review, offer, reject — within the deadline."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.bank import bp
from app.extensions import db
from app.forms import ConfirmForm
from app.services import applications, loans
from app.services.accounts import AccountError, PermissionRefused
from models import Loan, LoanApplication


def _addressed_to_me(application_id: int) -> LoanApplication:
    """An application this bank may see now; anything else is the same 404 as a missing id."""
    app = db.session.get(LoanApplication, application_id)
    if app is None or not applications.visible_to_bank(app, current_user.organization_id):
        abort(404)
    return app


@bp.get("/applications")
def application_list() -> Any:
    """The bank's applications, those awaiting its answer first (soonest deadline first),
    then the others newest first; fifty a page."""
    listing = applications.page_for_bank(current_user, request.args.get("page", 1, type=int) or 1)
    return render_template(
        "bank/applications.html",
        applications=listing.items,
        listing=listing,
        labels=applications.STATUS_LABELS,
        overdue={a.id for a in listing.items if applications.is_overdue(a)},
    )


@bp.get("/applications/<int:application_id>")
def application_detail(application_id: int, errors: dict[str, str] | None = None) -> Any:
    app = _addressed_to_me(application_id)
    return render_template(
        "bank/application.html",
        app=app,
        labels=applications.STATUS_LABELS,
        reasons=applications.REJECTION_CODES,
        overdue=applications.is_overdue(app),
        action_form=ConfirmForm(),
        errors=errors or {},
        values=request.form,
    ), (422 if errors else 200)


def _decimal(name: str) -> Decimal | None:
    try:
        return Decimal(request.form.get(name, "").strip())
    except InvalidOperation:
        return None


@bp.post("/applications/<int:application_id>/<any(review, offer, reject):change>")
def application_change(application_id: int, change: str) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    app = _addressed_to_me(application_id)
    errors: dict[str, str] = {}
    try:
        if change == "review":
            applications.start_review(current_user, app)
        elif change == "offer":
            amount_wan, rate, fee = (
                _decimal("amount_wan"),
                _decimal("rate"),
                _decimal("fee") or Decimal(0),
            )
            term = request.form.get("term_months", "")
            try:
                valid_until = dt.date.fromisoformat(request.form.get("valid_until", ""))
            except ValueError:
                valid_until = None
            for field, value in (
                ("amount", amount_wan),
                ("rate", rate),
                ("valid_until", valid_until),
            ):
                if value is None:
                    errors[field] = _("Enter a valid value.")
            if not term.isdigit():
                errors["term_months"] = _("Enter the term in months.")
            if errors or amount_wan is None or rate is None or valid_until is None:
                db.session.rollback()
                return application_detail(application_id, errors)
            applications.make_offer(
                current_user, app, amount=amount_wan * 10_000, rate=rate,
                term_months=int(term), fee=fee, valid_until=valid_until,
            )  # fmt: skip
        else:
            applications.reject(
                current_user, app, request.form.getlist("codes"), request.form.get("text", "")
            )
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        return application_detail(application_id, {exc.field or "form": str(exc.message)})
    db.session.commit()
    flash(str(applications.STATUS_LABELS[app.status]), "success")
    return redirect(url_for("bank.application_detail", application_id=application_id))


@bp.post("/applications/<int:application_id>/disburse")
def application_disburse(application_id: int) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    app = _addressed_to_me(application_id)
    try:
        on = dt.date.fromisoformat(request.form.get("disbursed_on", ""))
    except ValueError:
        return application_detail(
            application_id, {"disbursed_on": _("Enter a date as YYYY-MM-DD.")}
        )
    try:
        loans.disburse(current_user, app, on)
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        return application_detail(application_id, {exc.field or "form": str(exc.message)})
    db.session.commit()
    flash(_("Disbursed: the loan is recorded."), "success")
    return redirect(url_for("bank.loan_list"))


@bp.get("/loans")
def loan_list() -> Any:
    """The bank's loans, newest first, fifty a page."""
    listing = loans.page_for_bank(current_user, request.args.get("page", 1, type=int) or 1)
    return render_template(
        "bank/loans.html", loans=listing.items, listing=listing, action_form=ConfirmForm()
    )


@bp.post("/loans/<int:loan_id>/<any(repayment, overdue, default, recovery):kind>")
def loan_event(loan_id: int, kind: str) -> Response:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    loan = db.session.get(Loan, loan_id)
    if loan is None or loan.bank_org_id != current_user.organization_id:
        abort(404)
    try:
        on = dt.date.fromisoformat(request.form.get("occurred_on", ""))
        if kind == "repayment":
            loans.record_repayment(current_user, loan, _decimal("amount") or Decimal(0), on)
        elif kind == "recovery":
            loans.record_recovery(current_user, loan, _decimal("amount") or Decimal(0), on)
        elif kind == "overdue":
            days = request.form.get("days_overdue", "")
            loans.record_overdue(current_user, loan, on, int(days) if days.isdigit() else 0)
        else:
            loans.record_default(current_user, loan, on)
    except ValueError:
        db.session.rollback()
        flash(_("Enter a date as YYYY-MM-DD."), "error")
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        flash(_("Recorded."), "success")
    # Back to the page the officer was on (the form's action carries it).
    return redirect(url_for("bank.loan_list", page=request.args.get("page", 1, type=int) or 1))
