"""The bank API: authorized profiles, applications and decisions, loans, needs, pool.

A bank client acts as its bank through its service user (the actor the services and the
audit trail see). Everything about an enterprise — its profile, its applications, its needs,
pool eligibility — needs a live sharing grant at the moment of the request, through
:func:`authorization.decide` (lists through its SQL form :func:`shared_with_bank`, the same
the bank's pages use); without one, the answer is the same 404 as for something that does
not exist. Recording what happens to the bank's own loans (disbursing an accepted offer,
repayments, default) needs no grant: it is the bank's own business and must go on after a
sharing grant ends.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from pydantic import BaseModel, Field, PlainSerializer, RootModel, WithJsonSchema

from app.api.errors import ApiProblem
from app.api.spec import (
    ApiModel,
    FieldError,
    Money,
    Page,
    PageQuery,
    Rate,
    current_client,
    not_found,
    operation,
)
from app.services import (
    applications,
    audit,
    authorization,
    bank_views,
    loans,
    needs,
    pool,
    workdays,
)
from app.services.accounts import AccountError, PermissionRefused
from app.services.authorization import Action
from models import (
    ApplicationStatus,
    Enterprise,
    FinancingNeed,
    Loan,
    LoanApplication,
    LoanProduct,
    Organization,
    ProductStatus,
    User,
    db,
)

DecimalText = Annotated[
    Decimal,
    PlainSerializer(lambda d: format(d, "f"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}),
]
Cell = str | int | bool | None

# Schemas -----------------------------------------------------------------------------


class EnterpriseOut(BaseModel):
    id: int
    uscc: str
    name: str
    region_code: str
    industry_code: str
    size_class: str
    founded_on: dt.date


class ProfileSummary(BaseModel):
    enterprise: EnterpriseOut
    matching_product_ids: list[int]


class ProfileList(BaseModel):
    items: list[ProfileSummary]
    page: Page


class ProfileQuery(PageQuery):
    region: str | None = Field(None, pattern=r"^\d{2,6}$", description="GB/T 2260 prefix")
    industry: str | None = Field(None, pattern=r"^[A-T]\d{0,2}$", description="GB/T 4754")
    eligible_only: bool = Field(False, description="only those fitting a product of yours")


class CreditProfileOut(BaseModel):
    computed_at: dt.datetime
    as_of: dt.date
    pd: DecimalText | None = Field(description="12-month probability of default, 0..1")
    score: DecimalText | None
    grade: str | None
    public_credit_class: str
    reasons: list[dict[str, Any]]
    knockouts: list[str]
    annual_sales: Money | None
    tax_months: int | None
    social_months: int | None
    model_version_id: int | None


class ProfileOut(BaseModel):
    enterprise: EnterpriseOut
    profile: CreditProfileOut | None
    records: dict[str, list[dict[str, Cell]]]
    hidden_scopes: list[str]


class OfferOut(BaseModel):
    amount: Money
    rate: Rate
    term_months: int
    fee: Money
    valid_until: dt.date


class RejectionOut(BaseModel):
    codes: list[str]
    text: str | None


class ApplicationOut(BaseModel):
    id: int
    enterprise: EnterpriseOut
    product_id: int
    product_name: str
    status: str
    amount: Money
    term_months: int
    purpose: str
    need_id: int | None
    submitted_at: dt.datetime | None
    respond_by: dt.datetime | None
    decided_at: dt.datetime | None
    offer: OfferOut | None
    rejection: RejectionOut | None


class ApplicationList(BaseModel):
    items: list[ApplicationOut]
    page: Page


StatusName = enum.StrEnum(  # type: ignore[misc]
    "StatusName", {s.name: s.value for s in ApplicationStatus if s is not ApplicationStatus.DRAFT}
)


class ApplicationQuery(PageQuery):
    status: StatusName | None = None


class OfferDecision(ApiModel):
    decision: Literal["offer"]
    amount: Money
    rate: Rate
    term_months: int = Field(ge=1, le=600)
    fee: Money = Decimal("0.00")
    valid_until: dt.date


RejectionCode = enum.StrEnum(  # type: ignore[misc]
    "RejectionCode", {c.upper(): c for c in applications.REJECTION_CODES}
)


class RejectDecision(ApiModel):
    decision: Literal["reject"]
    codes: list[RejectionCode] = Field(min_length=1, max_length=6)
    text: str = Field("", max_length=1000)


class DecisionIn(
    RootModel[Annotated[OfferDecision | RejectDecision, Field(discriminator="decision")]]
):
    pass


class DisbursementIn(ApiModel):
    disbursed_on: dt.date


class RepaymentIn(ApiModel):
    amount: Money
    on: dt.date


class DefaultIn(ApiModel):
    on: dt.date


class LoanOut(BaseModel):
    id: int
    application_id: int
    enterprise_id: int
    product_id: int
    principal: Money
    rate: Rate
    term_months: int
    disbursed_on: dt.date
    maturity_on: dt.date
    first_loan: bool
    outstanding: Money
    status: str


class LoanList(BaseModel):
    items: list[LoanOut]
    page: Page


class NeedOut(BaseModel):
    id: int
    enterprise: EnterpriseOut
    amount: Money
    term_months: int
    purpose: str
    max_rate: Rate
    expires_at: dt.datetime
    fitting_product_ids: list[int]


class NeedList(BaseModel):
    items: list[NeedOut]
    page: Page


class TakeIn(ApiModel):
    product_id: int = Field(ge=1, le=2**31 - 1)


class PoolQuery(ApiModel):
    enterprise_id: int = Field(ge=1, le=2**31 - 1)
    product_id: int = Field(ge=1, le=2**31 - 1)
    amount: Money


class PoolCheckOut(BaseModel):
    rule: str
    passed: bool
    text: str
    remedy: str | None


class PoolEligibilityOut(BaseModel):
    enterprise_id: int
    product_id: int
    amount: Money
    eligible: bool
    pool: str | None
    ratio: DecimalText | None
    covered_amount: Money | None
    first_loan: bool
    checks: list[PoolCheckOut]


# Helpers -----------------------------------------------------------------------------


def _actor() -> User:
    client = current_client()
    if not client.is_bank or client.service_user is None:
        raise ApiProblem(
            403, "not-a-bank-client", _l("Not a bank client"),
            _l("Only a bank's API client may call the bank API."),
        )  # fmt: skip
    return client.service_user


def _bank() -> Organization:
    return _actor().organization


def _enterprise_out(e: Enterprise) -> EnterpriseOut:
    return EnterpriseOut(
        id=e.id, uscc=e.uscc, name=e.name, region_code=e.region_code,
        industry_code=e.industry_code, size_class=e.size_class.value, founded_on=e.founded_on,
    )  # fmt: skip


def _may_see(enterprise: Enterprise) -> bool:
    return authorization.decide(_bank(), Action.VIEW_PROFILE, enterprise).allowed


def _page(query: PageQuery, total: int) -> tuple[slice, Page]:
    """The slice of a list read whole that ``query`` asks for, and its :func:`_page_info`."""
    start = (query.page - 1) * query.per_page
    return slice(start, start + query.per_page), _page_info(query, total)


def _page_info(query: PageQuery, total: int) -> Page:
    """What a list's answer says of its page (the page read in SQL, or sliced)."""
    return Page(page=query.page, per_page=query.per_page, total=total)


def _unprocessable(exc: AccountError) -> ApiProblem:
    if isinstance(exc, applications.IllegalTransition):
        return ApiProblem(409, "illegal-transition", _l("Illegal change"), exc.message)
    if isinstance(exc, PermissionRefused):
        return ApiProblem(403, "refused", _l("Refused"), exc.message)
    return ApiProblem(
        422, "invalid-fields", _l("Invalid fields"), exc.message,
        errors=[FieldError(field=exc.field, message=str(exc.message)).model_dump()],
    )  # fmt: skip


def _cell(value: Any) -> Cell:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


# Profiles ----------------------------------------------------------------------------


@operation(
    "GET", "/profiles", summary="Authorized profiles", tag="profiles", scope="profiles:read",
    query=ProfileQuery, response=ProfileList,
)  # fmt: skip
def profile_list(query: ProfileQuery) -> ProfileList:
    """Enterprises whose live sharing grant names this bank (or every bank) — the bank's
    prospect list, in its order, from the list the web process keeps (README, *What a bank
    sees*) — with the bank's published products each one qualifies for."""
    actor = _actor()
    where = bank_views.ProspectFilter(query.region, query.industry, query.eligible_only)
    start = (query.page - 1) * query.per_page
    found = bank_views.prospect_slice(actor, where, start, query.per_page)
    page = _page_info(query, found.total)
    audit.record(
        "api.profiles.list", actor=actor, object_type="provider_client",
        object_id=current_client().client_id, details={"count": found.total},
    )  # fmt: skip
    return ProfileList(
        items=[
            ProfileSummary(enterprise=_enterprise_out(row), matching_product_ids=list(ids))
            for row, ids in found.items
        ],
        page=page,
    )


@operation(
    "GET", "/profiles/<int:enterprise_id>", summary="One authorized profile", tag="profiles",
    scope="profiles:read", response=ProfileOut,
)  # fmt: skip
def profile_detail(enterprise_id: int) -> ProfileOut:
    """The latest credit profile and the detail records the grant shares. Every read asks
    the policy, counts as a use of the grant and is in the audit trail the enterprise reads."""
    try:
        view = bank_views.view_profile(_actor(), enterprise_id)
    except bank_views.NotVisible:
        raise not_found() from None
    p = view.profile
    profile = (
        CreditProfileOut(
            computed_at=p.computed_at,
            as_of=p.as_of,
            pd=p.pd,
            score=p.score,
            grade=p.grade,
            public_credit_class=p.public_credit_class,
            reasons=list(p.reasons or []),
            knockouts=list(p.knockouts or []),
            annual_sales=p.annual_sales,
            tax_months=p.tax_months,
            social_months=p.social_months,
            model_version_id=p.model_version_id,
        )
        if p is not None
        else None
    )
    records = {
        scope: [
            {
                key: _cell(getattr(row, key, None))
                for key, _label in bank_views.RECORD_COLUMNS[scope]
            }
            for row in rows
        ]
        for scope, rows in view.records.items()
    }
    return ProfileOut(
        enterprise=_enterprise_out(view.enterprise), profile=profile, records=records,
        hidden_scopes=view.hidden_scopes,
    )  # fmt: skip


# Applications ------------------------------------------------------------------------


def _application_out(app: LoanApplication) -> ApplicationOut:
    offer = None
    if app.offer_amount is not None and app.offer_rate is not None:
        offer = OfferOut(
            amount=app.offer_amount, rate=app.offer_rate,
            term_months=app.offer_term_months or app.term_months,
            fee=app.offer_fee or Decimal(0),
            valid_until=app.offer_valid_until or workdays.local_date(),
        )  # fmt: skip
    rejection = (
        RejectionOut(codes=list(app.rejection_codes or []), text=app.rejection_text)
        if app.status is ApplicationStatus.REJECTED
        else None
    )
    return ApplicationOut(
        id=app.id, enterprise=_enterprise_out(app.enterprise), product_id=app.product_id,
        product_name=app.product.name, status=app.status.value, amount=app.amount,
        term_months=app.term_months, purpose=app.purpose, need_id=app.need_id,
        submitted_at=app.submitted_at, respond_by=app.respond_by, decided_at=app.decided_at,
        offer=offer, rejection=rejection,
    )  # fmt: skip


def _application(application_id: int) -> LoanApplication:
    app = db.session.get(LoanApplication, application_id)
    if app is None or not applications.visible_to_bank(app, _bank().id):
        raise not_found()
    return app


@operation(
    "GET", "/applications", summary="Applications addressed to the bank", tag="applications",
    scope="applications:write", query=ApplicationQuery, response=ApplicationList,
)  # fmt: skip
def application_list(query: ApplicationQuery) -> ApplicationList:
    """Applications to this bank that it may see now — from enterprises that share with it,
    or already accepted (its contracts) — those awaiting its answer first, soonest deadline
    first, then the others, newest first; filter by ``status``."""
    status = None if query.status is None else ApplicationStatus(query.status.value)
    found = applications.page_for_bank(_actor(), query.page, status, query.per_page, clamp=False)
    page = _page_info(query, found.total)
    return ApplicationList(items=[_application_out(a) for a in found.items], page=page)


@operation(
    "GET", "/applications/<int:application_id>", summary="One application",
    tag="applications", scope="applications:write", response=ApplicationOut,
)  # fmt: skip
def application_detail(application_id: int) -> ApplicationOut:
    """An application addressed to this bank, while the enterprise shares with it (or once
    it accepted an offer)."""
    return _application_out(_application(application_id))


@operation(
    "POST", "/applications/<int:application_id>/review", summary="Start the review",
    tag="applications", scope="applications:write", response=ApplicationOut,
)  # fmt: skip
def application_review(application_id: int) -> ApplicationOut:
    """submitted → under_review."""
    app = _application(application_id)
    try:
        applications.start_review(_actor(), app)
    except AccountError as exc:
        raise _unprocessable(exc) from exc
    return _application_out(app)


@operation(
    "POST", "/applications/<int:application_id>/decision", summary="Offer or reject",
    tag="applications", scope="applications:write", body=DecisionIn, response=ApplicationOut,
)  # fmt: skip
def application_decision(application_id: int, body: DecisionIn) -> ApplicationOut:
    """An offer (amount, rate, term, fee, valid until — within the product's ranges) or a
    rejection with coded reasons ("other" needs a text)."""
    app = _application(application_id)
    decision = body.root
    try:
        if isinstance(decision, OfferDecision):
            applications.make_offer(
                _actor(), app, amount=decision.amount, rate=decision.rate,
                term_months=decision.term_months, fee=decision.fee,
                valid_until=decision.valid_until,
            )  # fmt: skip
        else:
            applications.reject(_actor(), app, [c.value for c in decision.codes], decision.text)
    except AccountError as exc:
        raise _unprocessable(exc) from exc
    return _application_out(app)


# Loans -------------------------------------------------------------------------------


def _loan_out(loan: Loan) -> LoanOut:
    return LoanOut(
        id=loan.id, application_id=loan.application_id, enterprise_id=loan.enterprise_id,
        product_id=loan.product_id, principal=loan.principal, rate=loan.rate,
        term_months=loan.term_months, disbursed_on=loan.disbursed_on,
        maturity_on=loan.maturity_on, first_loan=loan.first_loan,
        outstanding=loan.outstanding, status=loan.status.value,
    )  # fmt: skip


def _own_loan(loan_id: int) -> Loan:
    loan = db.session.get(Loan, loan_id)
    if loan is None or loan.bank_org_id != _bank().id:
        raise not_found()
    return loan


@operation(
    "POST", "/applications/<int:application_id>/disbursement", summary="Record disbursement",
    tag="loans", scope="loans:write", body=DisbursementIn, response=LoanOut, status=201,
)  # fmt: skip
def application_disburse(application_id: int, body: DisbursementIn) -> LoanOut:
    """The accepted offer becomes a loan (covered by the pool where the pool allows)."""
    app = _application(application_id)
    try:
        loan = loans.disburse(_actor(), app, body.disbursed_on)
    except AccountError as exc:
        raise _unprocessable(exc) from exc
    return _loan_out(loan)


@operation(
    "GET", "/loans", summary="The bank's loans", tag="loans", scope="loans:write",
    query=PageQuery, response=LoanList,
)  # fmt: skip
def loan_list(query: PageQuery) -> LoanList:
    """Every loan this bank disbursed, newest first."""
    found = loans.page_for_bank(_actor(), query.page, query.per_page, clamp=False)
    page = _page_info(query, found.total)
    return LoanList(items=[_loan_out(loan) for loan in found.items], page=page)


@operation(
    "GET", "/loans/<int:loan_id>", summary="One loan", tag="loans", scope="loans:write",
    response=LoanOut,
)  # fmt: skip
def loan_detail(loan_id: int) -> LoanOut:
    """One of this bank's loans."""
    return _loan_out(_own_loan(loan_id))


@operation(
    "POST", "/loans/<int:loan_id>/repayments", summary="Record a repayment", tag="loans",
    scope="loans:write", body=RepaymentIn, response=LoanOut, status=201,
)  # fmt: skip
def loan_repayment(loan_id: int, body: RepaymentIn) -> LoanOut:
    """Principal repaid; the loan is repaid when nothing is outstanding."""
    loan = _own_loan(loan_id)
    try:
        loans.record_repayment(_actor(), loan, body.amount, body.on)
    except AccountError as exc:
        raise _unprocessable(exc) from exc
    return _loan_out(loan)


@operation(
    "POST", "/loans/<int:loan_id>/default", summary="Record a default", tag="loans",
    scope="loans:write", body=DefaultIn, response=LoanOut, status=201,
)  # fmt: skip
def loan_default(loan_id: int, body: DefaultIn) -> LoanOut:
    """The loan defaulted on this date (an outcome label for retraining)."""
    loan = _own_loan(loan_id)
    try:
        loans.record_default(_actor(), loan, body.on)
    except AccountError as exc:
        raise _unprocessable(exc) from exc
    return _loan_out(loan)


# Needs -------------------------------------------------------------------------------


@operation(
    "GET", "/needs", summary="Open financing needs", tag="needs", scope="needs:write",
    query=PageQuery, response=NeedList,
)  # fmt: skip
def need_list(query: PageQuery) -> NeedList:
    """Open needs this bank may take: shared with it and fitting one of its products."""
    items = needs.visible_to_bank(_actor())
    window, page = _page(query, len(items))
    return NeedList(
        items=[
            NeedOut(
                id=n.need.id,
                enterprise=_enterprise_out(n.need.enterprise),
                amount=n.need.amount,
                term_months=n.need.term_months,
                purpose=n.need.purpose,
                max_rate=n.need.max_rate,
                expires_at=n.need.expires_at,
                fitting_product_ids=[p.id for p in n.products],
            )
            for n in items[window]
        ],
        page=page,
    )


@operation(
    "POST", "/needs/<int:need_id>/take", summary="Take a need (抢单)", tag="needs",
    scope="needs:write", body=TakeIn, response=ApplicationOut, status=201,
)  # fmt: skip
def need_take(need_id: int, body: TakeIn) -> ApplicationOut:
    """The first bank to take it wins: the need becomes an application under review."""
    need = db.session.get(FinancingNeed, need_id)
    if need is None or not _may_see(need.enterprise):
        raise not_found()
    product = db.session.get(LoanProduct, body.product_id)
    if product is None:
        raise ApiProblem(
            422,
            "invalid-fields",
            _l("Invalid fields"),
            _l("Choose one of your published products."),
            errors=[{"field": "product_id", "message": str(_l("unknown product"))}],
        )
    try:
        app = needs.take(_actor(), need, product)
    except PermissionRefused:
        raise not_found() from None
    except AccountError as exc:
        if exc.field is None:
            raise ApiProblem(409, "need-closed", _l("Need closed"), exc.message) from exc
        raise _unprocessable(exc) from exc
    return _application_out(app)


# Pool --------------------------------------------------------------------------------


@operation(
    "GET", "/pool/eligibility", summary="Pool eligibility", tag="pool", scope="pool:read",
    query=PoolQuery, response=PoolEligibilityOut,
)  # fmt: skip
def pool_eligibility(query: PoolQuery) -> PoolEligibilityOut:
    """Would a loan of ``amount`` under one of this bank's products to this enterprise be
    covered by the risk-compensation pool? Each rule with the enterprise's value in words."""
    bank = _bank()
    enterprise = db.session.get(Enterprise, query.enterprise_id)
    if enterprise is None or not _may_see(enterprise):
        raise not_found()
    product = db.session.scalar(
        sa.select(LoanProduct).where(
            LoanProduct.id == query.product_id,
            LoanProduct.bank_org_id == bank.id,
            LoanProduct.status == ProductStatus.PUBLISHED,
        )
    )
    if product is None:
        raise not_found()
    first = pool.is_first_loan(enterprise.id)
    result = pool.eligibility(enterprise, product, query.amount, first)
    return PoolEligibilityOut(
        enterprise_id=enterprise.id,
        product_id=product.id,
        amount=query.amount,
        eligible=result.eligible,
        pool=result.pool.name if result.pool else None,
        ratio=result.ratio,
        covered_amount=result.covered_amount,
        first_loan=first,
        checks=[
            PoolCheckOut(
                rule=c.rule,
                passed=c.passed,
                text=str(c.text),
                remedy=str(c.remedy) if c.remedy is not None else None,
            )
            for c in result.checks
        ],
    )
