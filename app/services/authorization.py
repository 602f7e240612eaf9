"""Granting, revoking and — in one place — deciding uses of enterprise data.

:func:`decide` is the single policy function: every page, job and API endpoint that
collects or shows an enterprise's data asks it first, at the moment of the request, so a
revocation or an expiry bites on the very next request.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, cast

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from app.services import audit, workdays
from app.services.accounts import AccountError, PermissionRefused
from models import (
    Authorization,
    AuthorizationKind,
    AuthorizationStatus,
    Enterprise,
    FetchFrequency,
    Organization,
    OrgKind,
    Purpose,
    Role,
    User,
    db,
)
from models.authorization import MAX_VALIDITY, SCOPES
from models.base import utcnow
from models.loan import Loan, LoanStatus

CONSENT_TEXT_VERSION = "2026-11"
MAX_VALID_DAYS = MAX_VALIDITY.days
MAX_DATA_MONTHS = 36
EXPIRY_WARNING = dt.timedelta(days=14)

SCOPE_LABELS = {
    "tax": _l("Tax"),
    "social_insurance": _l("Social insurance"),
    "utilities": _l("Water, electricity and gas"),
    "provident_fund": _l("Housing provident fund"),
}


class Action(enum.StrEnum):
    COLLECT = "collect"  # the platform fetches a scope from providers
    VIEW_PROFILE = "view_profile"  # a bank opens the credit profile
    VIEW_RECORDS = "view_records"  # a bank opens the detail records of a scope


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # machine-readable: ok, no_grant, revoked, expired, paused, ...
    message: Any  # for people, zh/en
    authorization_id: int | None = None


# Consent text ------------------------------------------------------------------------


@cache
def consent_text(version: str = CONSENT_TEXT_VERSION) -> dict[str, str]:
    folder = resources.files("app.consent")
    return {
        lang: folder.joinpath(f"{version}.{lang}.txt").read_text("utf-8").strip()
        for lang in ("zh", "en")
    }


def consent_text_hash(version: str = CONSENT_TEXT_VERSION) -> str:
    text = consent_text(version)
    return hashlib.sha256((text["zh"] + "\n\n" + text["en"]).encode()).hexdigest()


# Granting ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantRequest:
    kind: AuthorizationKind
    scopes: tuple[str, ...]
    grantee_org_id: int | None = None  # sharing with one bank
    all_banks: bool = False  # sharing with every bank on the platform
    include_records: bool = False
    data_months: int = 24
    valid_days: int = 365
    data_life_days: int = 365
    fetch_frequency: FetchFrequency = FetchFrequency.MONTHLY
    purpose: Purpose = Purpose.FINANCING


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _require_enterprise_actor(actor: User, enterprise: Enterprise) -> None:
    if (
        actor.organization_id != enterprise.organization_id
        or actor.org_kind is not OrgKind.ENTERPRISE
    ):
        raise PermissionRefused(
            _l("Only the enterprise itself may grant or revoke its authorizations.")
        )
    if actor.role is Role.VIEWER:
        raise PermissionRefused(_l("Viewers may not grant or revoke authorizations."))


def grant(
    actor: User, enterprise: Enterprise, request: GrantRequest, now: dt.datetime | None = None
) -> Authorization:
    """Record a consent. Raises :class:`AccountError` naming the field that is wrong."""
    now = now or utcnow()
    _require_enterprise_actor(actor, enterprise)
    scopes = tuple(sorted(set(request.scopes)))
    if not scopes:
        raise AccountError(_l("Choose at least one kind of data."), field="scopes")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise AccountError(_l("Unknown data scope: %(s)s.", s=", ".join(unknown)), field="scopes")
    if not 1 <= request.valid_days <= MAX_VALID_DAYS:
        raise AccountError(
            _l("An authorization lasts between 1 day and one year (%(n)d days).", n=MAX_VALID_DAYS),
            field="valid_days",
        )
    if not 1 <= request.data_months <= MAX_DATA_MONTHS:
        raise AccountError(
            _l("The data range is 1 to %(n)d months.", n=MAX_DATA_MONTHS), field="data_months"
        )
    if not 1 <= request.data_life_days <= MAX_VALID_DAYS:
        raise AccountError(
            _l("Data may be kept between 1 day and one year."), field="data_life_days"
        )
    grantee_id = None
    if request.kind is AuthorizationKind.SHARING:
        if request.all_banks == (request.grantee_org_id is not None):
            raise AccountError(
                _l("Choose one bank, or every bank on the platform."), field="grantee"
            )
        if request.grantee_org_id is not None:
            bank = db.session.get(Organization, request.grantee_org_id)
            if bank is None or not is_active_bank(bank):
                raise AccountError(_l("Choose a bank on the platform."), field="grantee")
            grantee_id = bank.id
    elif request.all_banks or request.grantee_org_id is not None or request.include_records:
        raise AccountError(_l("A collection authorization names no bank."), field="grantee")
    if request.purpose is Purpose.POST_LOAN_MONITORING and (
        grantee_id is None or not _has_active_loan(grantee_id, enterprise.id)
    ):
        raise AccountError(
            _l("Post-loan monitoring is for one bank that has an active loan to you."),
            field="purpose",
        )

    valid_until = now + dt.timedelta(days=request.valid_days)
    data_to = _month_start(workdays.local_date(valid_until))
    data_from = _add_months(_month_start(workdays.local_date(now)), -request.data_months)
    authorization = Authorization(
        enterprise_id=enterprise.id,
        kind=request.kind,
        grantee_org_id=grantee_id,
        all_banks=request.all_banks,
        scopes=",".join(scopes),
        include_records=request.include_records,
        purpose=request.purpose,
        data_from=data_from,
        data_to=data_to,
        data_life_days=request.data_life_days,
        fetch_frequency=request.fetch_frequency,
        valid_from=now,
        valid_until=valid_until,
        consent_text_version=CONSENT_TEXT_VERSION,
        consent_text_hash=consent_text_hash(),
        granted_by_user_id=actor.id,
        granted_at=now,
    )
    db.session.add(authorization)
    db.session.flush()
    audit.record(
        "authorization.grant",
        actor=actor,
        enterprise_id=enterprise.id,
        scope=authorization.scopes,
        object_type="authorization",
        object_id=authorization.public_id,
        details={
            "kind": request.kind.value,
            "grantee_org_id": grantee_id,
            "all_banks": request.all_banks,
        },
        now=now,
    )
    return authorization


def revoke(actor: User, authorization: Authorization, now: dt.datetime | None = None) -> None:
    """Revoke at once; collection and sharing stop from the next request."""
    now = now or utcnow()
    _require_enterprise_actor(actor, authorization.enterprise)
    if authorization.revoked_at is not None:
        return
    authorization.revoked_at = now
    authorization.revoked_by_user_id = actor.id
    db.session.flush()
    audit.record(
        "authorization.revoke",
        actor=actor,
        enterprise_id=authorization.enterprise_id,
        scope=authorization.scopes,
        object_type="authorization",
        object_id=authorization.public_id,
        now=now,
    )


def set_paused(
    actor: User, authorization: Authorization, paused: bool, now: dt.datetime | None = None
) -> None:
    now = now or utcnow()
    _require_enterprise_actor(actor, authorization.enterprise)
    if authorization.status_at(now) in (AuthorizationStatus.REVOKED, AuthorizationStatus.EXPIRED):
        raise AccountError(_l("A revoked or expired authorization cannot be changed."))
    authorization.paused_at = now if paused else None
    db.session.flush()
    audit.record(
        "authorization.pause" if paused else "authorization.resume",
        actor=actor,
        enterprise_id=authorization.enterprise_id,
        scope=authorization.scopes,
        object_type="authorization",
        object_id=authorization.public_id,
        now=now,
    )


# Deciding ----------------------------------------------------------------------------

_REFUSALS = {
    AuthorizationStatus.REVOKED: ("revoked", _l("The enterprise has revoked this authorization.")),
    AuthorizationStatus.EXPIRED: ("expired", _l("The authorization has expired.")),
    AuthorizationStatus.PAUSED: ("paused", _l("The enterprise has paused this authorization.")),
    AuthorizationStatus.PENDING: ("not_yet_valid", _l("The authorization is not valid yet.")),
}


def _candidate_grants(
    enterprise_id: int, kind: AuthorizationKind, bank_id: int | None
) -> list[Authorization]:
    params = {"enterprise_id": enterprise_id, "kind": kind, "bank_id": bank_id}
    return list(db.session.scalars(_candidates(kind is AuthorizationKind.SHARING), params))


@cache
def _candidates(sharing: bool) -> sa.Select[Authorization]:
    """The SELECT behind :func:`_candidate_grants`, built once (its values are bound
    parameters): a page asks it on every request."""
    stmt = sa.select(Authorization).where(
        Authorization.enterprise_id == sa.bindparam("enterprise_id"),
        Authorization.kind == sa.bindparam("kind"),
    )
    if sharing:
        stmt = stmt.where(
            sa.or_(
                Authorization.grantee_org_id == sa.bindparam("bank_id"),
                Authorization.all_banks.is_(True),
            )
        )
    # populate_existing: a grant already in this session (loaded earlier in the request or
    # job) is re-read, so a revocation committed by another session counts at once.
    return stmt.order_by(Authorization.granted_at.desc()).execution_options(populate_existing=True)


def decide(
    actor_org: Organization | None,
    action: Action,
    enterprise: Enterprise,
    scope: str | None = None,
    *,
    month: dt.date | None = None,
    now: dt.datetime | None = None,
) -> Decision:
    """May ``actor_org`` (``None`` = the platform) do ``action`` on ``enterprise``'s data now?

    The enterprise itself may always see its own data. A bank needs a live sharing grant
    naming it (or every bank); for records, one that covers ``scope`` and includes
    records. Collection needs a live collection grant covering ``scope`` (and ``month``,
    if given, within its data range). Nothing else is ever allowed.
    """
    return _decide(actor_org, action, enterprise, scope, month, now or utcnow(), None)


def decide_for_view(
    actor_org: Organization | None,
    enterprise: Enterprise,
    scopes: Sequence[str],
    now: dt.datetime | None = None,
) -> tuple[Decision, dict[str, Decision]]:
    """What :func:`decide` answers for viewing ``enterprise``'s profile and, per scope, its
    records — from one read of the grants, as one page shows them together."""
    now = now or utcnow()
    grants = None
    if (
        actor_org is not None
        and actor_org.id != enterprise.organization_id
        and is_active_bank(actor_org)
    ):
        grants = _candidate_grants(enterprise.id, AuthorizationKind.SHARING, actor_org.id)
    profile = _decide(actor_org, Action.VIEW_PROFILE, enterprise, None, None, now, grants)
    records = {
        scope: _decide(actor_org, Action.VIEW_RECORDS, enterprise, scope, None, now, grants)
        for scope in scopes
    }
    return profile, records


def _decide(
    actor_org: Organization | None,
    action: Action,
    enterprise: Enterprise,
    scope: str | None,
    month: dt.date | None,
    now: dt.datetime,
    grants: list[Authorization] | None,
) -> Decision:
    """:func:`decide`, with the candidate grants already read when ``grants`` is given."""
    if actor_org is not None and actor_org.id == enterprise.organization_id:
        return Decision(True, "own_data", _l("Your own data."))
    if action is Action.COLLECT:
        if actor_org is not None:
            return Decision(False, "not_platform", _l("Only the platform collects data."))
        if grants is None:
            grants = _candidate_grants(enterprise.id, AuthorizationKind.COLLECTION, None)
    else:
        if actor_org is None or not is_active_bank(actor_org):
            return Decision(
                False, "not_a_bank", _l("Only banks the enterprise authorized may see its data.")
            )
        if grants is None:
            grants = _candidate_grants(enterprise.id, AuthorizationKind.SHARING, actor_org.id)
    if not grants:
        return Decision(False, "no_grant", _l("The enterprise has not authorized this."))

    best: Decision | None = None
    for authorization in grants:
        status = authorization.status_at(now)
        if status is not AuthorizationStatus.ACTIVE:
            reason, message = _REFUSALS[status]
            best = best or Decision(False, reason, message, authorization.id)
            continue
        if (
            scope is not None
            and action is not Action.VIEW_PROFILE
            and not authorization.covers(scope)
        ):
            best = Decision(
                False,
                "scope_not_granted",
                _l("This kind of data is not covered by the authorization."),
                authorization.id,
            )
            continue
        if action is Action.VIEW_RECORDS and not authorization.include_records:
            best = Decision(
                False,
                "records_not_shared",
                _l("The enterprise shares its profile but not the detail records."),
                authorization.id,
            )
            continue
        if (
            month is not None
            and not authorization.data_from <= _month_start(month) <= authorization.data_to
        ):
            best = Decision(
                False,
                "outside_data_range",
                _l("This month is outside the authorized data range."),
                authorization.id,
            )
            continue
        if authorization.purpose is Purpose.POST_LOAN_MONITORING and not (
            authorization.grantee_org_id is not None
            and _has_active_loan(authorization.grantee_org_id, enterprise.id)
        ):
            best = Decision(
                False,
                "no_active_loan",
                _l("Post-loan monitoring ends when the loan is no longer active."),
                authorization.id,
            )
            continue
        return Decision(True, "ok", _l("Authorized."), authorization.id)
    return best or Decision(False, "no_grant", _l("The enterprise has not authorized this."))


def _has_active_loan(bank_org_id: int, enterprise_id: int) -> bool:
    return (
        db.session.scalar(
            sa.select(Loan.id).where(
                Loan.bank_org_id == bank_org_id,
                Loan.enterprise_id == enterprise_id,
                Loan.status == LoanStatus.ACTIVE,
            )
        )
        is not None
    )


def record_use(decision: Decision, now: dt.datetime | None = None) -> None:
    """Count a use of the grant behind an allowed decision (shown in the consent ledger)."""
    record_uses([decision], now)


def record_uses(decisions: Iterable[Decision], now: dt.datetime | None = None) -> None:
    """Count a use for each allowed decision, one UPDATE per grant (a page that shows the
    profile and three scopes' records counts four uses of the one grant behind them)."""
    uses = Counter(
        d.authorization_id for d in decisions if d.allowed and d.authorization_id is not None
    )
    now = now or utcnow()
    session = db.session()
    for authorization_id, count in sorted(uses.items()):
        session.execute(
            _count_uses(), {"grant_id": authorization_id, "uses": count, "used_at": now}
        )
        # The grant, if this session holds it, reads the new counts on its next access (the
        # UPDATE is on the table: the ORM neither evaluates it against every loaded object
        # nor runs its bulk-update machinery, several times the statement's own cost).
        key = sa.inspect(Authorization).identity_key_from_primary_key((authorization_id,))
        loaded = session.identity_map.get(key)
        if loaded is not None:
            session.expire(loaded, ["use_count", "last_used_at"])


@cache
def _count_uses() -> sa.Update:
    grants = cast(sa.Table, Authorization.__table__)
    return (
        sa.update(grants)
        .where(grants.c.id == sa.bindparam("grant_id"))
        .values(
            use_count=grants.c.use_count + sa.bindparam("uses"),
            last_used_at=sa.bindparam("used_at"),
        )
    )


@dataclass(frozen=True)
class CollectionWindow:
    authorization_id: int
    data_from: dt.date
    data_to: dt.date


def collection_windows(
    scope: str,
    usccs: list[str],
    now: dt.datetime | None = None,
    *,
    connection: sa.Connection | None = None,
) -> dict[str, CollectionWindow]:
    """For bulk ingestion: the USCCs among ``usccs`` with a live collection grant for
    ``scope``, and the months it covers (the widest, when several grants are live). One
    query, whatever the number of rows; on ``connection`` if given, else the session."""
    now = now or utcnow()
    query = (
        sa.select(
            Enterprise.uscc,
            Authorization.id,
            Authorization.scopes,
            Authorization.data_from,
            Authorization.data_to,
        )
        .join(Authorization, Authorization.enterprise_id == Enterprise.id)
        .where(
            Enterprise.uscc.in_(usccs),
            Authorization.kind == AuthorizationKind.COLLECTION,
            Authorization.revoked_at.is_(None),
            Authorization.paused_at.is_(None),
            Authorization.valid_from <= now,
            Authorization.valid_until > now,
        )
    )
    rows = (connection or db.session).execute(query)
    windows: dict[str, CollectionWindow] = {}
    for uscc, authorization_id, scopes, data_from, data_to in rows:
        if scope not in scopes.split(","):
            continue
        current = windows.get(uscc)
        if current is None or data_to > current.data_to:
            windows[uscc] = CollectionWindow(authorization_id, data_from, data_to)
    return windows


# The enterprise's view ---------------------------------------------------------------


def ledger(enterprise: Enterprise) -> list[Authorization]:
    return list(
        db.session.scalars(
            sa.select(Authorization)
            .where(Authorization.enterprise_id == enterprise.id)
            .order_by(Authorization.granted_at.desc())
        )
    )


def expiring_soon(enterprise: Enterprise, now: dt.datetime | None = None) -> list[Authorization]:
    now = now or utcnow()
    return [
        a
        for a in ledger(enterprise)
        if a.status_at(now) is AuthorizationStatus.ACTIVE and a.valid_until - now <= EXPIRY_WARNING
    ]


def receipt(authorization: Authorization) -> dict[str, Any]:
    """The machine-readable consent receipt; ``receipt_hash`` is the SHA-256 of the
    canonical JSON (sorted keys, no spaces, UTF-8) of every other field."""
    grantee = (
        {"type": "all_banks"}
        if authorization.all_banks
        else {
            "type": "bank",
            "name": authorization.grantee.name,
            "id": authorization.grantee_org_id,
        }
        if authorization.grantee is not None
        else {"type": "platform"}
    )
    body = {
        "receipt_version": "1",
        "authorization_id": authorization.public_id,
        "enterprise": {
            "uscc": authorization.enterprise.uscc,
            "name": authorization.enterprise.name,
        },
        "kind": authorization.kind.value,
        "grantee": grantee,
        "scopes": authorization.scope_list,
        "include_records": authorization.include_records,
        "purpose": authorization.purpose.value,
        "data_range": {
            "from": authorization.data_from.strftime("%Y-%m"),
            "to": authorization.data_to.strftime("%Y-%m"),
        },
        "data_life_days": authorization.data_life_days,
        "fetch_frequency": authorization.fetch_frequency.value,
        "valid_from": authorization.valid_from.isoformat(),
        "valid_until": authorization.valid_until.isoformat(),
        "granted_at": authorization.granted_at.isoformat(),
        "granted_by_user_id": authorization.granted_by_user_id,
        "revoked_at": authorization.revoked_at.isoformat() if authorization.revoked_at else None,
        "consent_text": {
            "version": authorization.consent_text_version,
            "sha256": authorization.consent_text_hash,
        },
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {**body, "receipt_hash": hashlib.sha256(canonical.encode()).hexdigest()}


def banks() -> list[Organization]:
    return list(
        db.session.scalars(
            sa.select(Organization)
            .where(Organization.kind == OrgKind.BANK, Organization.is_active.is_(True))
            .order_by(Organization.name)
        )
    )


def shared_with_bank(bank: Organization, now: dt.datetime | None = None) -> list[int]:
    """Ids of the enterprises whose live sharing grant names ``bank`` (or every bank).

    The SQL form of what :func:`decide` allows for ``Action.VIEW_PROFILE``, for lists and
    counts; every single view still goes through :func:`decide`.
    """
    if not is_active_bank(bank):
        return []
    return list(
        db.session.scalars(
            shared_with_bank_select().distinct().order_by(Authorization.enterprise_id),
            {"bank_id": bank.id, "now": now or utcnow()},
        )
    )


def is_active_bank(org: Organization) -> bool:
    """An active bank: the only organization a sharing grant may name, or that may see
    shared profiles at all."""
    return org.kind is OrgKind.BANK and org.is_active


@cache
def shared_with_bank_select() -> sa.Select[Any]:
    """:func:`shared_with_bank` as a SELECT of enterprise ids (repeats possible), to use as a
    subquery, for an :func:`is_active_bank`. Built once; the statement that runs it
    binds its parameters ``bank_id`` (the bank's organization id) and ``now``."""
    bank_id: sa.BindParameter[int] = sa.bindparam("bank_id")  # typed by the columns
    now: sa.BindParameter[dt.datetime] = sa.bindparam("now")
    return sa.select(Authorization.enterprise_id).where(
        Authorization.kind == AuthorizationKind.SHARING,
        sa.or_(Authorization.grantee_org_id == bank_id, Authorization.all_banks.is_(True)),
        sa.or_(Authorization.revoked_at.is_(None), Authorization.revoked_at > now),
        Authorization.paused_at.is_(None),
        sa.or_(
            Authorization.purpose != Purpose.POST_LOAN_MONITORING,
            sa.exists().where(
                Loan.bank_org_id == bank_id,
                Loan.enterprise_id == Authorization.enterprise_id,
                Loan.status == LoanStatus.ACTIVE,
            ),
        ),
        Authorization.valid_from <= now,
        Authorization.valid_until > now,
    )
