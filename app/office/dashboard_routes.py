"""The office dashboard: figures against targets, charts, the bank league table, drill-down
to the loans and applications behind a number, CSV and XLSX exports."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.extensions import db
from app.forms import ConfirmForm
from app.office import bp
from app.security import reauth_required
from app.services import applications, audit, dashboard, exports
from app.services.accounts import AccountError, PermissionRefused
from app.services.paging import page_of
from models import OrgKind

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _filters() -> tuple[dashboard.Filters, dict[str, str], str | None]:
    """The filter from the query string; on a bad value, the default and the error."""
    args = {k: request.args.get(k, "").strip() for k in ("start", "end", "bank", "region")}
    default = dashboard.default_filters()
    try:
        start = dt.date.fromisoformat(args["start"]) if args["start"] else default.start
        end = dt.date.fromisoformat(args["end"]) if args["end"] else default.end
        bank = int(args["bank"]) if args["bank"] else None
        filters = dashboard.Filters(start, end, bank, args["region"])
    except ValueError:
        return default, args, _("Dates are written YYYY-MM-DD.")
    except AccountError as exc:
        return default, args, str(exc.message)
    args.update(start=filters.start.isoformat(), end=filters.end.isoformat())
    return filters, args, None


def _query(args: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {**{k: v for k, v in args.items() if v}, **extra}


@bp.get("/dashboard")
def dashboard_page() -> Any:
    filters, args, error = _filters()
    summary = dashboard.summary(current_user, filters)
    breakdowns = {d: dashboard.breakdown(filters, d) for d in dashboard.DIMENSIONS}
    chart = {
        "months": [c.key for c in breakdowns["month"]],
        "amounts": [float(c.amount / 10_000) for c in breakdowns["month"]],
        "counts": [c.count for c in breakdowns["month"]],
        "types": [c.label for c in breakdowns["product_type"]],
        "type_amounts": [float(c.amount / 10_000) for c in breakdowns["product_type"]],
        "banks": [c.label for c in breakdowns["bank"]],
        "bank_amounts": [float(c.amount / 10_000) for c in breakdowns["bank"]],
        "labels": {"amount": _("Amount (10,000 CNY)"), "count": _("Loans")},
    }
    return render_template(
        "office/dashboard.html",
        s=summary,
        checks=dashboard.against_targets(summary),
        breakdowns=breakdowns,
        league=dashboard.league_table(current_user, filters),
        reasons=applications.REJECTION_CODES,
        banks=_bank_choices(),
        args=args,
        query=lambda **extra: _query(args, **extra),
        error=error,
        chart=chart,
        titles=DIMENSION_TITLES,
        support=dashboard.support_by_kind(filters),
        targets=dashboard.targets(),
        target_labels={m: label for m, (label, _d) in dashboard.TARGETS.items()},
        form=ConfirmForm(),
    )


def _bank_choices() -> list[tuple[int, str]]:
    from app.services import organizations

    return [(o.id, o.name) for o, _n in organizations.organizations(current_user, OrgKind.BANK)]


def _download(sheets: list[exports.Sheet], fmt: str, stem: str) -> Response:
    if fmt not in FORMATS:
        abort(404)
    body = exports.to_xlsx(sheets) if fmt == "xlsx" else exports.to_csv(sheets)
    audit.record(
        "dashboard.export", actor=current_user,
        details={"what": stem, "format": fmt, "query": dict(request.args)},
    )  # fmt: skip
    db.session.commit()
    return Response(
        body,
        mimetype=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'},
    )


def _pct(value: Decimal | None) -> Any:
    return "" if value is None else value


@bp.get("/dashboard/export.<fmt>")
def dashboard_export(fmt: str) -> Response:
    filters, _args, _error = _filters()
    s = dashboard.summary(current_user, filters)
    figures = [
        (_("Loans"), s.loans.count), (_("Amount lent (CNY)"), s.loans.amount),
        (_("First loans"), s.first_loans.count),
        (_("First-loan amount (CNY)"), s.first_loans.amount),
        (_("Credit-loan share (percent)"), _pct(s.credit_share)),
        (_("Average rate (percent)"), _pct(s.average_rate)),
        (_("Growth on a year before (percent)"), _pct(s.growth)),
        (_("Applications"), s.submitted), (_("Approval rate (percent)"), _pct(s.approval_rate)),
        (_("Median days to decision"), _pct(s.median_days_to_decision)),
        (_("Answered within the deadline (percent)"), _pct(s.within_deadline)),
        (_("Needs posted"), s.needs_posted), (_("Needs taken"), s.needs_taken),
    ]  # fmt: skip
    sheets = [
        exports.Sheet(
            _("Summary"),
            [_("Figure"), _("Value")],
            [(_("Period"), f"{filters.start} – {filters.end}"), *figures],
        )
    ]
    for dimension, title in DIMENSION_TITLES.items():
        cells = dashboard.breakdown(filters, dimension)
        header = [str(title), _("Loans"), _("Amount (CNY)")]
        rows = [(c.label, c.count, c.amount) for c in cells]
        sheets.append(exports.Sheet(str(title), header, rows))
    support = dashboard.support_by_kind(filters)
    sheets.append(
        exports.Sheet(
            _("Support policies"),
            [_("Kind"), _("Approved"), _("Amount approved (CNY)")],
            [(c.label, c.count, c.amount) for c in support],
        )
    )
    league = dashboard.league_table(current_user, filters)
    sheets.append(
        exports.Sheet(
            _("Banks"),
            [_("Bank"), _("Applications"), _("Median days to decision"),
             _("Answered within the deadline (percent)"), _("Take-up (percent)"),
             _("Rejections"), _("Loans"), _("First-loan share (percent)"),
             _("Default rate (percent)")],
            [(r.bank.name, r.received, _pct(r.median_days), _pct(r.within_deadline),
              _pct(r.take_up), ", ".join(f"{k}:{v}" for k, v in sorted(r.rejections.items())),
              r.loans, _pct(r.first_loan_share), _pct(r.default_rate)) for r in league],
        )
    )  # fmt: skip
    return _download(sheets, fmt, f"xinyidai-dashboard-{filters.start}-{filters.end}")


DIMENSION_TITLES = {
    "month": _l("Month"),
    "bank": _l("Bank"),
    "product_type": _l("Product type"),
    "industry": _l("Industry"),
    "region": _l("Region"),
    "size_class": _l("Size class"),
}


@bp.get("/dashboard/loans", defaults={"fmt": None})
@bp.get("/dashboard/loans.<fmt>")
def dashboard_loans(fmt: str | None) -> Any:
    filters, args, error = _filters()
    dimension = request.args.get("dimension") or None
    key = request.args.get("key") or None
    if dimension is not None and dimension not in dashboard.DIMENSIONS:
        abort(404)
    first_only = request.args.get("first") == "1"
    if fmt is not None:
        rows = dashboard.loan_rows(filters, dimension, key, first_only=first_only)
        sheet = exports.Sheet(
            _("Loans"),
            [_("Enterprise"), _("Unified social credit code"), _("Bank"), _("Product"),
             _("Principal (CNY)"), _("Rate (percent)"), _("Term (months)"), _("Disbursed on"),
             _("First loan"), _("Status")],
            [(loan.enterprise.name, loan.enterprise.uscc, loan.product.bank.name,
              loan.product.name, loan.principal, loan.rate, loan.term_months,
              loan.disbursed_on.isoformat(), _("Yes") if loan.first_loan else _("No"),
              loan.status.value) for loan in rows],
        )  # fmt: skip
        return _download([sheet], fmt, "xinyidai-loans")
    # The page: fifty loans, the count and the principal of all of them summed in SQL.
    query = dashboard.loan_rows_query(filters, dimension, key, first_only=first_only)
    found = page_of(query, request.args.get("page", 1, type=int))
    return render_template(
        "office/dashboard_loans.html", rows=found.items, found=found, args=args, error=error,
        query=_query(args, dimension=dimension or "", key=key or "",
                     first="1" if first_only else ""),
        total=dashboard.loan_total(query),
    )  # fmt: skip


@bp.get("/dashboard/applications")
def dashboard_applications() -> Any:
    filters, args, error = _filters()
    metric = request.args.get("metric", "submitted")
    if metric not in dashboard.APPLICATION_METRICS:
        abort(404)
    found = page_of(
        dashboard.application_rows_query(filters, metric), request.args.get("page", 1, type=int)
    )
    return render_template(
        "office/dashboard_applications.html",
        rows=found.items,
        found=found,
        labels=applications.STATUS_LABELS,
        args=args,
        error=error,
        metric=metric,
        query=_query(args, metric=metric),
    )


@bp.post("/dashboard/targets")
@reauth_required()
def dashboard_targets() -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        for metric in dashboard.TARGETS:
            raw = request.form.get(metric, "").strip()
            if not raw:
                continue
            try:
                value = Decimal(raw)
            except InvalidOperation:
                raise AccountError(_("Enter a number."), field=metric) from None
            if value != dashboard.targets()[metric]:
                dashboard.set_target(current_user, metric, value)
    except (AccountError, PermissionRefused) as exc:
        db.session.rollback()
        flash(str(exc.message), "error")
    else:
        db.session.commit()
        flash(_("Targets saved."), "success")
    target: dict[str, Any] = request.args.to_dict()
    return redirect(url_for("office.dashboard_page", **target))
