"""The bank's pool claims: file a claim on a defaulted covered loan, follow its status."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.bank import bp
from app.forms import ConfirmForm
from app.services import pool as pool_service
from app.services.accounts import AccountError
from app.services.paging import page_of
from models import Loan, Role, db
from models.pool import PoolClaim


@bp.get("/claims")
def claim_list() -> Any:
    found = page_of(
        pool_service.bank_claims_query(current_user), request.args.get("page", 1, type=int)
    )
    return render_template(
        "bank/claims.html",
        claims=found.items,
        found=found,
        claimable=pool_service.claimable_loans(current_user),
        labels=pool_service.CLAIM_LABELS,
        can_file=current_user.role is not Role.VIEWER,
    )


def _own_loan(loan_id: int) -> Loan:
    loan = db.session.get(Loan, loan_id)
    if loan is None or loan.bank_org_id != current_user.organization_id:
        abort(404)
    return loan


@bp.route("/claims/new/<int:loan_id>", methods=["GET", "POST"])
def claim_new(loan_id: int) -> Any:
    loan = _own_loan(loan_id)
    coverage = pool_service.coverage_of(loan.id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not ConfirmForm().validate_on_submit():
            abort(400)
        try:
            claim = pool_service.transact(
                lambda: pool_service.file_claim(
                    current_user,
                    loan,
                    request.form.get("evidence", ""),
                    request.form.get("evidence_files", ""),
                )
            )
        except AccountError as exc:
            errors[exc.field or "form"] = str(exc.message)
        else:
            flash(_("Claim filed; the financial office will review it."), "success")
            return redirect(url_for("bank.claim_detail", claim_id=claim.id))
    loss = pool_service.principal_loss(loan)
    return render_template(
        "bank/claim_new.html",
        loan=loan,
        coverage=coverage,
        loss=loss,
        estimate=pool_service.claim_amount(coverage, loss) if coverage and loss > 0 else None,
        form=ConfirmForm(),
        errors=errors,
        values=request.form,
    ), (422 if errors else 200)


@bp.get("/claims/<int:claim_id>")
def claim_detail(claim_id: int) -> Any:
    claim = db.session.get(PoolClaim, claim_id)
    if claim is None or claim.bank_org_id != current_user.organization_id:
        abort(404)
    return render_template("bank/claim.html", claim=claim, labels=pool_service.CLAIM_LABELS)
