"""The office's risk-compensation pool: settings, figures, ledger, deposits, claims queue and
the solvency simulation. Views parse and authorize; :mod:`app.services.pool` does the work."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from app.forms import ConfirmForm, MultiCheckboxField, show_error
from app.office import bp
from app.security import reauth_required
from app.services import pool as pool_service
from app.services import pool_simulation as pool_simulation_service
from app.services import workdays
from app.services.accounts import AccountError
from app.services.paging import page_of
from app.services.products import grades
from models import Job, Role, db
from models.pool import ClaimStatus, PoolClaim, RiskPool

TEN_THOUSAND = Decimal(10_000)


class PoolSettingsForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=120)])
    funding_target_wan = DecimalField(
        _l("Funding target (10,000 CNY)"), places=2, validators=[InputRequired()]
    )
    coverage_ratio = DecimalField(
        _l("Coverage ratio (share of the principal loss, e.g. 0.40)"),
        places=4,
        validators=[InputRequired()],
    )
    first_loan_ratio = DecimalField(
        _l("Coverage ratio for first loans (首贷)"), places=4, validators=[InputRequired()]
    )
    per_loan_cap_wan = DecimalField(
        _l("Cap per loan (10,000 CNY)"), places=2, validators=[InputRequired()]
    )
    per_bank_cap_wan = DecimalField(
        _l("Cap per bank (10,000 CNY)"), places=2, validators=[InputRequired()]
    )
    leverage = DecimalField(
        _l("Leverage limit k (exposure at most k times the balance)"),
        places=2,
        validators=[InputRequired()],
    )
    period_start = DateField(_l("Period starts"), validators=[InputRequired()])
    period_end = DateField(_l("Period ends"), validators=[InputRequired()])
    size_classes = MultiCheckboxField(
        _l("Size classes covered (none ticked: all)"),
        choices=[SelectChoice(k, v) for k, v in pool_service.SIZE_LABELS.items()],
    )
    first_loan_only = BooleanField(_l("First loans only"))
    min_grade = SelectField(_l("Minimum credit grade"), validators=[Optional()])
    region_prefixes = StringField(
        _l("Regions (GB/T 2260 prefixes, comma-separated; empty: all)"),
        validators=[Optional(), Length(max=400)],
    )
    exclude_serious_dishonesty = BooleanField(
        _l("Exclude serious dishonesty (public-credit class C or D)")
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_grade.choices = [SelectChoice("", _("No minimum"))] + [
            SelectChoice(g, g) for g in grades()
        ]

    def settings(self) -> pool_service.PoolSettings:
        raw = (self.region_prefixes.data or "").replace("，", ",").replace(" ", ",")
        return pool_service.PoolSettings(
            name=self.name.data or "",
            funding_target=self.funding_target_wan.data * TEN_THOUSAND,
            coverage_ratio=self.coverage_ratio.data,
            first_loan_ratio=self.first_loan_ratio.data,
            per_loan_cap=self.per_loan_cap_wan.data * TEN_THOUSAND,
            per_bank_cap=self.per_bank_cap_wan.data * TEN_THOUSAND,
            leverage=self.leverage.data,
            period_start=self.period_start.data,
            period_end=self.period_end.data,
            size_classes=tuple(self.size_classes.data or ()),
            first_loan_only=bool(self.first_loan_only.data),
            min_grade=self.min_grade.data or None,
            region_prefixes=tuple(p.strip() for p in raw.split(",") if p.strip()),
            exclude_serious_dishonesty=bool(self.exclude_serious_dishonesty.data),
        )

    def fill(self, s: pool_service.PoolSettings) -> None:
        self.name.data = s.name
        self.funding_target_wan.data = s.funding_target / TEN_THOUSAND
        self.coverage_ratio.data = s.coverage_ratio
        self.first_loan_ratio.data = s.first_loan_ratio
        self.per_loan_cap_wan.data = s.per_loan_cap / TEN_THOUSAND
        self.per_bank_cap_wan.data = s.per_bank_cap / TEN_THOUSAND
        self.leverage.data = s.leverage
        self.period_start.data, self.period_end.data = s.period_start, s.period_end
        self.size_classes.data = list(s.size_classes)
        self.first_loan_only.data = s.first_loan_only
        self.min_grade.data = s.min_grade or ""
        self.region_prefixes.data = ",".join(s.region_prefixes)
        self.exclude_serious_dishonesty.data = s.exclude_serious_dishonesty


class DepositForm(FlaskForm):
    amount = DecimalField(
        _l("Amount (CNY)"), places=2, validators=[InputRequired(), NumberRange(min=0.01)]
    )
    memo = StringField(_l("Note (source of the funds)"), validators=[Optional(), Length(max=300)])
    request_key = HiddenField()


class SimulationForm(FlaskForm):
    rho = DecimalField(
        _l("Correlation between loans (0–0.9)"),
        places=2,
        default=Decimal("0.15"),
        validators=[InputRequired(), NumberRange(min=0, max=0.9)],
    )
    stress = DecimalField(
        _l("Stress factor on PDs (1 = as estimated)"),
        places=2,
        default=Decimal("1"),
        validators=[InputRequired(), NumberRange(min=0.1, max=10)],
    )
    lgd = DecimalField(
        _l("Share of the principal lost on default (LGD)"),
        places=2,
        default=Decimal("1"),
        validators=[InputRequired(), NumberRange(min=0.05, max=1)],
    )
    trials = IntegerField(
        _l("Simulated years"),
        default=20_000,
        validators=[InputRequired(), NumberRange(min=1000, max=100_000)],
    )
    seed = IntegerField(
        _l("Seed (the same seed gives the same figures)"),
        default=2026,
        validators=[InputRequired(), NumberRange(min=0, max=2**31)],
    )


class ReviewForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=1000)])


def _pool_or_404() -> RiskPool:
    pool = pool_service.latest_pool()
    if pool is None:
        abort(404)
    return pool


def _can_act() -> bool:
    return current_user.role in (Role.ADMIN, Role.OFFICER)


@bp.app_template_global("pool_precheck")
def pool_precheck(product: Any, enterprise: Any = None, amount: Any = None) -> Any:
    """The pool eligibility pre-check for ``templates/pool/_eligibility.html``."""
    return pool_service.precheck(product, enterprise, amount)


@bp.get("/pool")
def pool_home() -> Any:
    pool = pool_service.latest_pool()
    if pool is None:
        return redirect(url_for("office.pool_settings"))
    form = DepositForm(formdata=None, request_key=pool_service.new_request_key())
    return render_template(
        "office/pool.html",
        pool=pool,
        figures=pool_service.figures(pool),
        form=form,
        recent=pool_service.ledger(pool, limit=10),
        labels=pool_service.ENTRY_LABELS,
        can_act=_can_act(),
        sizes=pool_service.SIZE_LABELS,
    )


@bp.route("/pool/settings", methods=["GET", "POST"])
@reauth_required(methods=("POST",))
def pool_settings() -> Any:
    pool = pool_service.latest_pool()
    form = PoolSettingsForm()
    if request.method == "GET":
        if pool is not None:
            form.fill(pool_service.PoolSettings.of(pool))
        else:
            today = workdays.local_date()
            form.fill(
                pool_service.PoolSettings(
                    name=_("First-loan credit risk-compensation pool"),
                    funding_target=Decimal("50000000"), coverage_ratio=Decimal("0.40"),
                    first_loan_ratio=Decimal("0.50"), per_loan_cap=Decimal("2000000"),
                    per_bank_cap=Decimal("20000000"), leverage=Decimal("10"),
                    period_start=dt.date(today.year, 1, 1),
                    period_end=dt.date(today.year, 12, 31),
                )
            )  # fmt: skip
    if form.validate_on_submit():
        if current_user.role is not Role.ADMIN:
            abort(403)
        try:
            if pool is None:
                pool_service.create_pool(current_user, form.settings())
            else:
                pool_service.update_pool(current_user, pool, form.settings())
        except AccountError as exc:
            db.session.rollback()
            if not show_error(form, exc.field, exc.message):
                show_error(form, "name", exc.message)
        else:
            db.session.commit()
            flash(_("Pool settings saved."), "success")
            return redirect(url_for("office.pool_home"))
    return render_template(
        "office/pool_settings.html", form=form, pool=pool, is_admin=current_user.role is Role.ADMIN
    ), (422 if form.errors else 200)


@bp.post("/pool/deposit")
@reauth_required()
def pool_deposit() -> Any:
    pool = _pool_or_404()
    if not _can_act():
        abort(403)
    form = DepositForm()
    if form.validate_on_submit():
        try:
            pool_service.transact(
                lambda: pool_service.deposit(
                    current_user, pool, form.amount.data, form.request_key.data, form.memo.data
                )
            )
        except AccountError as exc:
            flash(str(exc.message), "error")
        else:
            flash(_("Deposit recorded."), "success")
    else:
        for errors in form.errors.values():
            flash(" ".join(str(e) for e in errors), "error")
    return redirect(url_for("office.pool_home"))


@bp.get("/pool/ledger")
def pool_ledger() -> Any:
    pool = _pool_or_404()
    found = pool_service.ledger_page(pool, request.args.get("page", 1, type=int))
    return render_template(
        "office/pool_ledger.html",
        pool=pool,
        rows=found.items,
        found=found,
        labels=pool_service.ENTRY_LABELS,
    )


@bp.get("/pool/claims")
def pool_claims() -> Any:
    status = request.args.get("status", "open")
    statuses = {
        "open": [ClaimStatus.FILED, ClaimStatus.APPROVED],
        "all": None,
    }.get(status, [ClaimStatus.FILED, ClaimStatus.APPROVED])
    found = page_of(
        pool_service.office_claims_query(statuses), request.args.get("page", 1, type=int)
    )
    return render_template(
        "office/pool_claims.html",
        claims=found.items,
        found=found,
        labels=pool_service.CLAIM_LABELS,
        status=status,
    )


def _claim_or_404(claim_id: int) -> PoolClaim:
    claim = db.session.get(PoolClaim, claim_id)
    if claim is None:
        abort(404)
    return claim


@bp.get("/pool/claims/<int:claim_id>")
def pool_claim(claim_id: int, errors: dict[str, str] | None = None) -> Any:
    claim = _claim_or_404(claim_id)
    return render_template(
        "office/pool_claim.html",
        claim=claim,
        labels=pool_service.CLAIM_LABELS,
        form=ReviewForm(),
        action_form=ConfirmForm(),
        errors=errors or {},
        can_act=_can_act(),
    ), (422 if errors else 200)


@bp.post("/pool/claims/<int:claim_id>/<any(approve, reject, pay):decision>")
def pool_claim_decide(claim_id: int, decision: str) -> Any:
    if not _can_act():
        abort(403)
    form = ReviewForm()
    if not form.validate_on_submit():
        abort(400)
    claim = _claim_or_404(claim_id)
    try:
        if decision == "pay":
            pool_service.transact(lambda: pool_service.payout(current_user, claim))
        else:
            pool_service.transact(
                lambda: pool_service.review(current_user, claim, decision, form.reason.data or "")
            )
    except AccountError as exc:
        return pool_claim(claim_id, {exc.field or "form": str(exc.message)})
    flash(str(pool_service.CLAIM_LABELS[claim.status]), "success")
    return redirect(url_for("office.pool_claim", claim_id=claim_id))


@bp.route("/pool/simulation", methods=["GET", "POST"])
def pool_simulation() -> Any:
    """The simulation's form; a run is a job (minutes of CPU for a province's pool), shown
    on ``?job=`` while it runs and once it is done."""
    pool = _pool_or_404()
    form = SimulationForm()
    if form.validate_on_submit():
        job_id = pool_simulation_service.start_simulation(
            current_user,
            pool,
            rho=float(form.rho.data),
            stress=float(form.stress.data),
            lgd=float(form.lgd.data),
            trials=int(form.trials.data),
            seed=int(form.seed.data),
        ).id
        db.session.commit()
        return redirect(url_for("office.pool_simulation", job=job_id))
    job = None
    if request.method == "GET" and (wanted := request.args.get("job", type=int)):
        job = _simulation_job(wanted)
        form = SimulationForm(
            formdata=None, data={k: job.params[k] for k in pool_simulation_service.PARAMETERS}
        )
    return render_template(
        "office/pool_simulation.html", pool=pool, form=form, job=job, **_figures(job)
    ), (422 if form.errors else 200)


@bp.get("/pool/simulation/jobs/<int:job_id>")
def pool_simulation_job(job_id: int) -> Any:
    job = _simulation_job(job_id)
    return render_template("office/_pool_simulation_result.html", job=job, **_figures(job))


def _simulation_job(job_id: int) -> Job:
    job = db.session.get(Job, job_id)
    if job is None or job.kind != pool_simulation_service.SIMULATION_JOB:
        abort(404)
    return job


def _figures(job: Job | None) -> dict[str, Any]:
    found = pool_simulation_service.result_of(job) if job is not None else None
    result, missing = found if found is not None else (None, None)
    return {"result": result, "missing": missing}
