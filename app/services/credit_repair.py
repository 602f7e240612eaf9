"""Credit repair (信用修复) of public-credit records.

Policy — 黑龙江省社会信用条例 (reference/004), 第四十条: a subject that has corrected its
dishonest conduct and removed its ill effects may apply for credit repair; when the conditions
are met the unit stops publishing the dishonesty information (停止公示失信信息) and tells the
subject, and sanctions end once the repair is complete.

Here: the enterprise applies about one of its public-credit records (text + evidence) →
``applied`` → the office approves (the record gets a **new version** with ``repaired_on`` set;
the old version is kept) or rejects with a reason. A repaired record no longer counts in the
public-credit class (:mod:`app.services.public_credit`), the profile is recomputed, and banks
no longer see it (:func:`shown_to_banks`). Functions flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from app.services import audit, enterprises, notifications, objections, workdays
from app.services.accounts import AccountError
from app.services.objections import Upload
from ml import schema
from models import CreditRepair, Enterprise, RepairStatus, User, db
from models.base import utcnow
from models.records import PublicCreditRecord

STATUS_LABELS = {
    RepairStatus.APPLIED: _l("Applied"),
    RepairStatus.APPROVED: _l("Approved: repaired"),
    RepairStatus.REJECTED: _l("Rejected"),
}


def is_repairable(record: PublicCreditRecord, today: dt.date) -> bool:
    """A dishonesty record (not a commendation) that is neither repaired nor past its
    publication period."""
    return (
        record.record_type != "commendation"
        and (record.repaired_on is None or record.repaired_on > today)
        and (record.publication_ends_on is None or record.publication_ends_on > today)
    )


def open_repair_for(enterprise_id: int, public_record_id: str) -> CreditRepair | None:
    return db.session.scalar(
        sa.select(CreditRepair).where(
            CreditRepair.enterprise_id == enterprise_id,
            CreditRepair.public_record_id == public_record_id,
            CreditRepair.status == RepairStatus.APPLIED,
        )
    )


def apply(
    actor: User,
    record_id: int,
    *,
    text: str,
    uploads: Sequence[Upload] = (),
    now: dt.datetime | None = None,
) -> CreditRepair:
    """Apply for repair of one of the actor's public-credit records (``record_id`` is the
    row's id). ``LookupError`` for another's record; :class:`AccountError` when the record
    does not count any more, an application is already open, or the text or evidence is bad."""
    now = now or utcnow()
    enterprise = objections._enterprise_actor(actor)
    text = objections._text(text)
    files = objections.check_uploads(uploads)
    record = objections.own_record(enterprise, schema.PUBLIC_CREDIT, record_id)
    latest = objections.latest_version(schema.PUBLIC_CREDIT, record)
    assert isinstance(latest, PublicCreditRecord)  # noqa: S101
    if not is_repairable(latest, workdays.local_date(now)):
        raise AccountError(
            _l("This record no longer counts (repaired, expired or a commendation)."),
            field="text",
        )
    if open_repair_for(enterprise.id, latest.record_id) is not None:
        raise AccountError(
            _l("A repair application for this record is already open."), field="text"
        )
    repair = CreditRepair(
        enterprise_id=enterprise.id,
        record_id=latest.id,
        public_record_id=latest.record_id,
        text=text,
        status=RepairStatus.APPLIED,
        applied_by_user_id=actor.id,
        applied_at=now,
    )
    db.session.add(repair)
    db.session.flush()
    objections.store_evidence(actor, files, repair=repair, now=now)
    audit.record(
        "repair.apply",
        actor=actor,
        enterprise_id=enterprise.id,
        scope=schema.PUBLIC_CREDIT,
        object_type="credit_repair",
        object_id=repair.id,
        details={
            "record_id": latest.id,
            "public_record_id": latest.record_id,
            "evidence": [e.sha256 for e in repair.evidence],
        },
        now=now,
    )
    notifications.notify(
        notifications.office_org_ids(), "repair.applied",
        {"enterprise": enterprise.name, "ref": repair.id}, now=now,
    )  # fmt: skip
    return repair


def decide(
    actor: User,
    repair: CreditRepair,
    *,
    approve: bool,
    reason: str | None = None,
    repaired_on: dt.date | None = None,
    now: dt.datetime | None = None,
) -> CreditRepair:
    """Approve (a new version of the record with ``repaired_on``, today in Beijing by
    default; the profile is recomputed) or reject (``reason`` required)."""
    now = now or utcnow()
    objections.require_office(actor)
    if repair.status is not RepairStatus.APPLIED:
        raise AccountError(_l("This application has already been decided."), field="form")
    reason = (reason or "").strip()
    if len(reason) > objections.MAX_TEXT:
        raise AccountError(
            _l("Use at most %(n)d characters.", n=objections.MAX_TEXT), field="reason"
        )
    if not approve and not reason:
        raise AccountError(
            _l("Give the reason for rejecting the application; the enterprise will read it."),
            field="reason",
        )
    details: dict[str, object] = {"decision": "approved" if approve else "rejected"}
    enterprise = db.session.get(Enterprise, repair.enterprise_id)
    assert enterprise is not None  # noqa: S101
    if approve:
        day = repaired_on or workdays.local_date(now)
        record = db.session.get(PublicCreditRecord, repair.record_id)
        assert record is not None  # noqa: S101
        new, _diff = objections.add_record_version(
            actor,
            schema.PUBLIC_CREDIT,
            record,
            {"repaired_on": day.isoformat()},
            origin=f"repair-{repair.id}",
            now=now,
        )
        repair.repaired_on = day
        repair.new_record_id = new.id
        details.update(new_record_id=new.id, new_version=new.version, repaired_on=day.isoformat())
    repair.status = RepairStatus.APPROVED if approve else RepairStatus.REJECTED
    repair.reason = reason or None
    repair.decided_at = now
    repair.decided_by_user_id = actor.id
    db.session.flush()
    audit.record(
        "repair.decide",
        actor=actor,
        enterprise_id=repair.enterprise_id,
        scope=schema.PUBLIC_CREDIT,
        object_type="credit_repair",
        object_id=repair.id,
        details=details,
        now=now,
    )
    notifications.notify(
        [enterprise_org_id(repair.enterprise_id)], f"repair.{repair.status.value}",
        {"reason": repair.reason or "", "ref": repair.id}, now=now,
    )  # fmt: skip
    if approve:
        objections.recompute_profile(enterprise, now, "credit_repair")
    return repair


def for_enterprise(actor: User) -> list[CreditRepair]:
    enterprise = enterprises.enterprise_of(actor)
    return list(
        db.session.scalars(
            sa.select(CreditRepair)
            .where(CreditRepair.enterprise_id == enterprise.id)
            .order_by(CreditRepair.applied_at.desc(), CreditRepair.id.desc())
        )
    )


def own_repair(actor: User, repair_id: int) -> CreditRepair:
    repair = db.session.get(CreditRepair, repair_id)
    if repair is None or repair.enterprise_id != enterprises.enterprise_of(actor).id:
        raise LookupError(repair_id)
    return repair


def queue() -> list[CreditRepair]:
    """Open applications, oldest first."""
    return list(
        db.session.scalars(
            sa.select(CreditRepair)
            .options(selectinload(CreditRepair.enterprise))
            .where(CreditRepair.status == RepairStatus.APPLIED)
            .order_by(CreditRepair.applied_at, CreditRepair.id)
        )
    )


def recently_decided(limit: int = 50) -> list[CreditRepair]:
    return list(
        db.session.scalars(
            sa.select(CreditRepair)
            .options(selectinload(CreditRepair.enterprise))
            .where(CreditRepair.status != RepairStatus.APPLIED)
            .order_by(CreditRepair.decided_at.desc(), CreditRepair.id.desc())
            .limit(limit)
        )
    )


def published_column(enterprise_id: Any) -> sa.ColumnElement[bool]:
    """A SQL column: whether ``enterprise_id`` (a column or a value) has any public-credit
    record at all. A page that reads the enterprise anyway asks with it, and reads the
    records (:func:`shown_to_banks`) only when there are some: most enterprises have none."""
    return sa.exists().where(PublicCreditRecord.enterprise_id == enterprise_id)


def shown_to_banks(enterprise_id: int, now: dt.datetime | None = None) -> list[PublicCreditRecord]:
    """The enterprise's public-credit records a bank sees: the latest version of each,
    still published and not repaired (art. 40: repaired records are no longer published)."""
    today = workdays.local_date(now)
    rows = objections.latest_records(enterprise_id, schema.PUBLIC_CREDIT)
    return [r for r in rows if isinstance(r, PublicCreditRecord) and is_repairable(r, today)]


def enterprise_org_id(enterprise_id: int) -> int:
    enterprise = db.session.get(Enterprise, enterprise_id)
    assert enterprise is not None  # noqa: S101
    return enterprise.organization_id
