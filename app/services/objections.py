"""Objections (异议): an enterprise disputes one of its records or its credit profile.

Policy — 黑龙江省社会信用条例 (reference/004), 第三十九条: the unit handling an objection marks
it (异议标注) within **one working day** of receiving it and decides within **three working
days**; when another unit must help verify, within **seven working days**. An objection found
right is corrected at once; one found wrong is refused *with the reason*.

Here: ``filed`` (by the enterprise) → ``flagged`` (the office marks it; it may say another
unit must verify, which moves the decision deadline to seven working days) → ``upheld`` |
``rejected``. Deadlines are counted in Chinese working days from the filing time
(:func:`app.services.workdays.deadline_at`: the end of that day, Beijing time).

* Upheld, on a record: the record is corrected by a **new version** (the disputed version is
  kept) and the profile recomputed. Upheld on the profile: the profile is recomputed.
* Rejected: a reason is required.
* While open (filed or flagged) the disputed record — every version of its natural key — or
  the profile is shown as "under objection" (:func:`marks_for`).

Evidence files (PDF, PNG, JPEG by their first bytes, at most :data:`MAX_EVIDENCE_BYTES` each)
are stored under the instance path, never under ``static``; only the office and the filing
enterprise may download them (:func:`evidence_for`). Every filing, flag and decision is in
the audit trail. Functions flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from app.services import audit, enterprises, notifications, profiles, workdays
from app.services.accounts import AccountError, PermissionRefused
from app.services.ingestion import COLUMNS, SOURCE_LABELS, _Bad, _Clock
from app.services.model_registry import RegistryError
from ml import schema
from models import (
    CreditProfile,
    Enterprise,
    IngestionBatch,
    Objection,
    ObjectionEvidence,
    ObjectionStatus,
    ObjectionTarget,
    OrgKind,
    Role,
    User,
    db,
)
from models.base import utcnow
from models.ingestion import BatchStatus
from models.objection import OPEN_OBJECTION_STATUSES, CreditRepair
from models.records import RECORD_MODELS, SourceRecord

# 黑龙江省社会信用条例 第三十九条: mark within 1 working day, decide within 3 (7 with help).
FLAG_DAYS = 1
DECIDE_DAYS = 3
DECIDE_DAYS_WITH_OTHER_UNIT = 7

MAX_TEXT = 2000
MAX_EVIDENCE_BYTES = 5 * 1024 * 1024
MAX_EVIDENCE_FILES = 3  # three files of 5 MB stay under the request limit (16 MB)

STATUS_LABELS = {
    ObjectionStatus.FILED: _l("Filed"),
    ObjectionStatus.FLAGGED: _l("Marked as under objection"),
    ObjectionStatus.UPHELD: _l("Upheld: corrected"),
    ObjectionStatus.REJECTED: _l("Rejected"),
}

# extension → (content type, the file's first bytes)
EVIDENCE_TYPES: dict[str, tuple[str, bytes]] = {
    "pdf": ("application/pdf", b"%PDF-"),
    "png": ("image/png", b"\x89PNG\r\n\x1a\n"),
    "jpg": ("image/jpeg", b"\xff\xd8\xff"),
    "jpeg": ("image/jpeg", b"\xff\xd8\xff"),
}


# ---------------------------------------------------------------------------------------------
# Who may act
# ---------------------------------------------------------------------------------------------
def _enterprise_actor(actor: User) -> Enterprise:
    if actor.org_kind is not OrgKind.ENTERPRISE or actor.role is Role.VIEWER:
        raise PermissionRefused(_l("Only the enterprise's administrators and officers may file."))
    return enterprises.enterprise_of(actor)


def require_office(actor: User) -> None:
    """Office administrators and officers decide; viewers only look."""
    if actor.org_kind is not OrgKind.OFFICE or actor.role is Role.VIEWER:
        raise PermissionRefused(
            _l("Only the financial office's administrators and officers may decide.")
        )


# ---------------------------------------------------------------------------------------------
# Records: lookup, natural keys, latest versions, new versions
# ---------------------------------------------------------------------------------------------
def key_columns(table: str) -> tuple[str, ...]:
    """The natural key of ``table`` without ``uscc`` (one enterprise's records)."""
    return tuple(k for k in schema.KEY_COLUMNS[table] if k != "uscc")


def record_key(table: str, record: Any) -> tuple[str, ...]:
    return tuple(str(getattr(record, k)) for k in key_columns(table))


def own_record(enterprise: Enterprise, table: str, record_id: int) -> SourceRecord:
    """One row of ``enterprise``'s records; ``LookupError`` for another's or a missing one."""
    model = RECORD_MODELS.get(table)
    if model is None:
        raise LookupError(table)
    record = db.session.get(model, record_id)
    if record is None or record.enterprise_id != enterprise.id:
        raise LookupError(record_id)
    return record


def latest_version(table: str, record: SourceRecord) -> SourceRecord:
    """The newest stored version of ``record``'s natural key."""
    model = RECORD_MODELS[table]
    conditions = [model.enterprise_id == record.enterprise_id]
    conditions += [getattr(model, k) == getattr(record, k) for k in key_columns(table)]
    newest = db.session.scalar(
        sa.select(model).where(*conditions).order_by(model.version.desc()).limit(1)
    )
    assert newest is not None  # noqa: S101  (record itself matches)
    return newest


def latest_records(enterprise_id: int, table: str, limit: int | None = 120) -> list[SourceRecord]:
    """The latest version of each of an enterprise's records in ``table``, newest first
    (at most ``limit``; None: all)."""
    return list(db.session.scalars(_latest_select(table, limit), {"enterprise_id": enterprise_id}))


def latest_record_rows(
    enterprise_id: int,
    table: str,
    columns: Sequence[str] | None = None,
    months: int | None = None,
) -> list[Any]:
    """:func:`latest_records` (all of them, or those of the newest ``months`` periods the
    enterprise has in ``table``) as read-only rows, not records the session tracks: what a
    bank's profile page shows, a hundred rows and more on every view (loading them as
    records cost more than the query). The rows have ``columns`` (None: all the table's),
    and always the record's key and period columns (what marks an objection and picks the
    months). The periods are picked in the query: years of older records are not read."""
    wanted = None if columns is None else tuple(columns)
    return list(
        db.session.execute(
            _latest_select(table, None, True, wanted, months), {"enterprise_id": enterprise_id}
        )
    )


@cache
def _latest_select(
    table: str,
    limit: int | None,
    rows: bool = False,
    columns: tuple[str, ...] | None = None,
    months: int | None = None,
) -> sa.Select[Any]:
    """The SELECT behind :func:`latest_records` (``rows``: :func:`latest_record_rows`, of
    ``columns`` and the key and period columns, None: all; ``months``: of the newest that
    many distinct periods only), built once per table, limit, columns and months (a bank's
    profile page runs it on every request); binds ``enterprise_id``."""
    model = RECORD_MODELS[table]
    enterprise_id: sa.BindParameter[int] = sa.bindparam("enterprise_id")
    keys = [getattr(model, k) for k in key_columns(table)]
    period = getattr(model, schema.PERIOD_COLUMN[table])
    recent: list[Any] = []
    if months is not None:
        if schema.PERIOD_COLUMN[table] not in key_columns(table):
            # Versions are picked among the window's rows: right only when a correction
            # cannot move a record's period (the period is part of its key).
            raise ValueError(f"{table}: its period is not part of the key; no months window")
        # The oldest period kept: the months-th newest the enterprise has (none: keep all),
        # found through the (enterprise, period) index, computed once per statement.
        other = sa.orm.aliased(model)
        other_period = getattr(other, schema.PERIOD_COLUMN[table])
        cutoff = (
            sa.select(other_period)
            .where(other.enterprise_id == enterprise_id)
            .distinct()
            .order_by(other_period.desc())
            .offset(months - 1)
            .limit(1)
            .scalar_subquery()
        )
        recent = [sa.or_(cutoff.is_(None), period >= cutoff)]
    newest = (
        sa.select(*keys, sa.func.max(model.version).label("v"))
        .where(model.enterprise_id == enterprise_id, *recent)
        .group_by(*keys)
        .subquery()
    )
    on = [
        model.version == newest.c.v,
        *(getattr(model, k) == newest.c[k] for k in key_columns(table)),
    ]
    if not rows:
        shown: Sequence[Any] = (model,)
    elif columns is None:
        shown = list(model.__table__.columns)
    else:
        names = dict.fromkeys((*key_columns(table), schema.PERIOD_COLUMN[table], *columns))
        shown = [model.__table__.c[name] for name in names]
    return (
        sa.select(*shown)
        .join(newest, sa.and_(*on))
        .where(model.enterprise_id == enterprise_id)
        .order_by(period.desc(), *keys)
        .limit(limit)
    )


def editable_columns(table: str) -> list[str]:
    """The data columns an office user may correct (never the natural key)."""
    keys = set(schema.KEY_COLUMNS[table])
    return [c.name for c in COLUMNS[table] if c.name not in keys]


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)
    return str(value).strip()


def add_record_version(
    actor: User,
    table: str,
    record: SourceRecord,
    changes: Mapping[str, str],
    *,
    origin: str,
    now: dt.datetime,
) -> tuple[SourceRecord, dict[str, list[str]]]:
    """Store the next version of ``record``'s natural key with ``changes`` (column → text)
    applied to its latest version; nothing is overwritten. Values are checked with the
    ingestion parsers, and the content hash is computed as ingestion computes it, so the
    provider re-sending the corrected content later is a duplicate.

    Returns the new row and ``{column: [old, new]}``. Raises :class:`AccountError`
    (``field`` = the column) for an invalid value, or when nothing would change.
    """
    latest = latest_version(table, record)
    clock = _Clock(workdays.local_date(now))
    editable = set(editable_columns(table))
    values: dict[str, str | None] = {}
    diff: dict[str, list[str]] = {}
    for column in COLUMNS[table]:
        old = _as_text(getattr(latest, column.name))
        text = changes.get(column.name, old) if column.name in editable else old
        text = (text or "").strip()
        if not text:
            if not column.optional:
                raise AccountError(_l("A value is required."), field=column.name)
            values[column.name] = None
        else:
            try:
                values[column.name] = column.bind(clock)(text)
            except _Bad as bad:
                raise AccountError(
                    _l("%(column)s: %(problem)s", column=column.name, problem=bad.message),
                    field=column.name,
                ) from None
        old_canonical = _canonical_or_raw(column, clock, old)
        new_canonical = values[column.name] or ""
        if new_canonical != old_canonical:
            diff[column.name] = [old_canonical, new_canonical]
    if table == schema.PUBLIC_CREDIT:
        decided = values["decided_on"] or ""
        for name in ("publication_ends_on", "repaired_on"):
            later = values[name]
            if later is not None and later < decided:
                raise AccountError(_l("This date is before the decision date."), field=name)
    if not diff:
        raise AccountError(
            _l("Enter the corrected values: nothing differs from the record."), field="corrections"
        )
    ordered = [values[c.name] for c in COLUMNS[table]]
    canonical = "\x1f".join([latest.uscc, *(v or "" for v in ordered)])
    provider = (actor.organization.name or "office")[:100]
    batch = IngestionBatch(
        source=table,
        provider=provider,
        idempotency_key=f"{origin}-{secrets.token_hex(8)}",
        content_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        received_at=now,
        submitted_by_user_id=actor.id,
        status=BatchStatus.COMPLETED,
        rows_total=1,
        corrected=1,
        completed_at=now,
        message=origin,
    )
    db.session.add(batch)
    db.session.flush()
    model = RECORD_MODELS[table]
    row: dict[str, Any] = {
        c.name: (None if values[c.name] is None else c.to_python(values[c.name] or ""))
        for c in COLUMNS[table]
    }
    new = model(
        uscc=latest.uscc,
        enterprise_id=latest.enterprise_id,
        provider=provider,
        batch_id=batch.id,
        version=latest.version + 1,
        content_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        received_at=now,
        **row,
    )
    db.session.add(new)
    db.session.flush()
    return new, diff


def _canonical_or_raw(column: Any, clock: _Clock, text: str) -> str:
    if not text:
        return ""
    try:
        return str(column.bind(clock)(text))
    except _Bad:
        return text


def recompute_profile(enterprise: Enterprise, now: dt.datetime, trigger: str) -> None:
    """A new snapshot at once; if the approved model cannot be loaded, by a job later."""
    try:
        with db.session.begin_nested():
            profiles.compute_profile(enterprise, now=now, trigger=trigger)
    except RegistryError:
        profiles.records_changed([enterprise.id])


# ---------------------------------------------------------------------------------------------
# Evidence files
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Upload:
    """An uploaded file as the view read it (at most the limit + 1 bytes)."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class _Checked:
    filename: str
    content_type: str
    data: bytes


def check_uploads(uploads: Sequence[Upload]) -> list[_Checked]:
    """Refuse (``AccountError``, field ``evidence``) before anything is stored: more than
    :data:`MAX_EVIDENCE_FILES` files, an empty or too large file, or one that is not a PDF,
    PNG or JPEG by its first bytes *and* its name's extension."""
    files = [u for u in uploads if u.filename or u.data]
    if len(files) > MAX_EVIDENCE_FILES:
        raise AccountError(
            _l("Attach at most %(n)d files.", n=MAX_EVIDENCE_FILES), field="evidence"
        )
    checked = []
    for upload in files:
        name = Path(upload.filename.replace("\\", "/")).name.strip()[:255] or "evidence"
        if not upload.data:
            raise AccountError(_l("%(name)s is empty.", name=name), field="evidence")
        if len(upload.data) > MAX_EVIDENCE_BYTES:
            raise AccountError(
                _l("%(name)s is larger than 5 MB; nothing was stored.", name=name),
                field="evidence",
            )
        extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        known = EVIDENCE_TYPES.get(extension)
        if known is None or not upload.data.startswith(known[1]):
            raise AccountError(
                _l(
                    "%(name)s is not a PDF, PNG or JPEG file (checked by its content, not "
                    "only its name); nothing was stored.",
                    name=name,
                ),
                field="evidence",
            )
        checked.append(_Checked(name, known[0], upload.data))
    return checked


def evidence_dir() -> Path:
    return Path(current_app.instance_path) / "evidence"


def evidence_path(evidence: ObjectionEvidence) -> Path:
    return evidence_dir() / evidence.stored_name


def store_evidence(
    actor: User,
    files: Iterable[_Checked],
    *,
    objection: Objection | None = None,
    repair: CreditRepair | None = None,
    now: dt.datetime,
) -> list[ObjectionEvidence]:
    folder = evidence_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stored = []
    for item in files:
        digest = hashlib.sha256(item.data).hexdigest()
        stored_name = f"{secrets.token_hex(16)}.bin"
        (folder / stored_name).write_bytes(item.data)
        evidence = ObjectionEvidence(
            objection=objection,
            repair=repair,
            filename=item.filename,
            content_type=item.content_type,
            size=len(item.data),
            sha256=digest,
            stored_name=stored_name,
            uploaded_by_user_id=actor.id,
            uploaded_at=now,
        )
        db.session.add(evidence)
        stored.append(evidence)
    db.session.flush()
    return stored


def evidence_for(actor: User, evidence_id: int) -> tuple[ObjectionEvidence, Path]:
    """The file for the office or the enterprise that filed it; ``LookupError`` for anyone
    else (so another enterprise cannot tell it exists)."""
    evidence = db.session.get(ObjectionEvidence, evidence_id)
    if evidence is None:
        raise LookupError(evidence_id)
    if actor.org_kind is not OrgKind.OFFICE:
        if actor.org_kind is not OrgKind.ENTERPRISE:
            raise LookupError(evidence_id)
        owner = evidence.objection or evidence.repair
        if owner is None or owner.enterprise_id != enterprises.enterprise_of(actor).id:
            raise LookupError(evidence_id)
    path = evidence_path(evidence)
    if not path.is_file():
        raise LookupError(evidence_id)
    return evidence, path


# ---------------------------------------------------------------------------------------------
# Filing, flagging, deciding
# ---------------------------------------------------------------------------------------------
def _text(text: str | None, field_name: str = "text") -> str:
    text = (text or "").strip()
    if not text:
        raise AccountError(_l("Say what is wrong and why."), field=field_name)
    if len(text) > MAX_TEXT:
        raise AccountError(_l("Use at most %(n)d characters.", n=MAX_TEXT), field=field_name)
    return text


def open_objection_for(
    enterprise_id: int, table: str | None, key: Sequence[str] | None
) -> Objection | None:
    """The open objection on that record key (or, with ``table`` None, on the profile)."""
    query = sa.select(Objection).where(
        Objection.enterprise_id == enterprise_id,
        Objection.status.in_(OPEN_OBJECTION_STATUSES),
    )
    if table is None:
        query = query.where(Objection.target == ObjectionTarget.PROFILE)
    else:
        query = query.where(Objection.record_table == table)
    for objection in db.session.scalars(query):
        if table is None or list(objection.record_key or []) == list(key or []):
            return objection
    return None


def file(
    actor: User,
    *,
    text: str,
    table: str | None = None,
    record_id: int | None = None,
    uploads: Sequence[Upload] = (),
    now: dt.datetime | None = None,
) -> Objection:
    """The enterprise objects to one of its records (``table`` + ``record_id``) or, with
    neither, to its latest credit profile. Raises ``LookupError`` for a record that is not the
    actor's own (shown as 404), :class:`AccountError` for a missing text, bad evidence or an
    objection already open on the same record."""
    now = now or utcnow()
    enterprise = _enterprise_actor(actor)
    text = _text(text)
    files = check_uploads(uploads)
    record: SourceRecord | None = None
    profile: CreditProfile | None = None
    key: tuple[str, ...] | None = None
    if table is not None or record_id is not None:
        if table is None or record_id is None:
            raise LookupError(record_id)
        record = own_record(enterprise, table, record_id)
        key = record_key(table, record)
    else:
        profile = profiles.latest_profile(enterprise)
        if profile is None:
            raise AccountError(_l("There is no credit profile to object to yet."), field="text")
    if open_objection_for(enterprise.id, table, key) is not None:
        raise AccountError(
            _l("An objection to this is already open; follow it on your objections page."),
            field="text",
        )
    objection = Objection(
        enterprise_id=enterprise.id,
        target=ObjectionTarget.RECORD if record is not None else ObjectionTarget.PROFILE,
        record_table=table if record is not None else None,
        record_id=record.id if record is not None else None,
        record_version=record.version if record is not None else None,
        record_key=list(key) if key is not None else None,
        profile_id=profile.id if profile is not None else None,
        text=text,
        status=ObjectionStatus.FILED,
        needs_other_unit=False,
        filed_by_user_id=actor.id,
        filed_at=now,
        # 黑龙江省社会信用条例 第三十九条: 一个工作日内作出异议标注, 三个工作日内作出处理决定
        flag_by=workdays.deadline_at(now, FLAG_DAYS),
        decide_by=workdays.deadline_at(now, DECIDE_DAYS),
    )
    db.session.add(objection)
    db.session.flush()
    store_evidence(actor, files, objection=objection, now=now)
    audit.record(
        "objection.file",
        actor=actor,
        enterprise_id=enterprise.id,
        scope=schema.TABLE_SCOPE.get(table) if table else None,
        object_type="objection",
        object_id=objection.id,
        details={
            "target": objection.target.value,
            "record_table": objection.record_table,
            "record_id": objection.record_id,
            "record_version": objection.record_version,
            "profile_id": objection.profile_id,
            "evidence": [e.sha256 for e in objection.evidence],
            "flag_by": objection.flag_by.isoformat(),
            "decide_by": objection.decide_by.isoformat(),
        },
        now=now,
    )
    notifications.notify(
        notifications.office_org_ids(), "objection.filed",
        {"enterprise": enterprise.name, "ref": objection.id}, now=now,
    )  # fmt: skip
    return objection


def _require_open(objection: Objection) -> None:
    if not objection.is_open:
        raise AccountError(_l("This objection has already been decided."), field="form")


def flag(
    actor: User, objection: Objection, *, needs_other_unit: bool = False,
    now: dt.datetime | None = None,
) -> Objection:  # fmt: skip
    """The office marks the objection (异议标注). ``needs_other_unit``: another unit must help
    verify, so the decision is due seven working days after filing instead of three (art. 39).
    Marking again only changes that choice."""
    now = now or utcnow()
    require_office(actor)
    _require_open(objection)
    objection.needs_other_unit = needs_other_unit
    days = DECIDE_DAYS_WITH_OTHER_UNIT if needs_other_unit else DECIDE_DAYS
    objection.decide_by = workdays.deadline_at(objection.filed_at, days)
    if objection.status is ObjectionStatus.FILED:
        objection.status = ObjectionStatus.FLAGGED
        objection.flagged_at = now
        objection.flagged_by_user_id = actor.id
    db.session.flush()
    audit.record(
        "objection.flag",
        actor=actor,
        enterprise_id=objection.enterprise_id,
        object_type="objection",
        object_id=objection.id,
        details={
            "needs_other_unit": needs_other_unit,
            "decide_by": objection.decide_by.isoformat(),
            "flagged_late": objection.flagged_at is not None
            and objection.flagged_at > objection.flag_by,
        },
        now=now,
    )
    return objection


def decide(
    actor: User,
    objection: Objection,
    *,
    uphold: bool,
    reason: str | None = None,
    corrections: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> Objection:
    """Uphold (a record is corrected by a new version with ``corrections``; the profile is
    recomputed) or reject (``reason`` required). An objection still only filed is marked in
    the same step."""
    now = now or utcnow()
    require_office(actor)
    _require_open(objection)
    reason = (reason or "").strip()
    if len(reason) > MAX_TEXT:
        raise AccountError(_l("Use at most %(n)d characters.", n=MAX_TEXT), field="reason")
    if not uphold and not reason:
        raise AccountError(
            _l("Give the reason for rejecting the objection; the enterprise will read it."),
            field="reason",
        )
    enterprise = db.session.get(Enterprise, objection.enterprise_id)
    assert enterprise is not None  # noqa: S101
    details: dict[str, Any] = {"decision": "upheld" if uphold else "rejected"}
    if uphold and objection.target is ObjectionTarget.RECORD:
        table = objection.record_table or ""
        disputed = db.session.get(RECORD_MODELS[table], objection.record_id)
        assert disputed is not None  # noqa: S101
        new, diff = add_record_version(
            actor, table, disputed, corrections or {}, origin=f"objection-{objection.id}", now=now
        )
        objection.correction = diff
        objection.corrected_record_id = new.id
        details.update(correction=diff, new_record_id=new.id, new_version=new.version)
    if objection.status is ObjectionStatus.FILED:
        objection.flagged_at = now
        objection.flagged_by_user_id = actor.id
    objection.status = ObjectionStatus.UPHELD if uphold else ObjectionStatus.REJECTED
    objection.reason = reason or None
    objection.decided_at = now
    objection.decided_by_user_id = actor.id
    db.session.flush()
    details["late"] = now > objection.decide_by
    audit.record(
        "objection.decide",
        actor=actor,
        enterprise_id=objection.enterprise_id,
        scope=schema.TABLE_SCOPE.get(objection.record_table or ""),
        object_type="objection",
        object_id=objection.id,
        details=details,
        now=now,
    )
    if uphold:
        recompute_profile(enterprise, now, "objection")
    notifications.notify(
        [enterprise.organization_id], f"objection.{objection.status.value}",
        {"reason": reason, "ref": objection.id}, now=now,
    )  # fmt: skip
    return objection


# ---------------------------------------------------------------------------------------------
# Reading: the enterprise's list, the office's queue, the "under objection" marks
# ---------------------------------------------------------------------------------------------
def for_enterprise(actor: User) -> list[Objection]:
    enterprise = enterprises.enterprise_of(actor)
    return list(
        db.session.scalars(
            sa.select(Objection)
            .where(Objection.enterprise_id == enterprise.id)
            .order_by(Objection.filed_at.desc(), Objection.id.desc())
        )
    )


def own_objection(actor: User, objection_id: int) -> Objection:
    """The enterprise's own objection; ``LookupError`` for another's (shown as 404)."""
    objection = db.session.get(Objection, objection_id)
    if objection is None or objection.enterprise_id != enterprises.enterprise_of(actor).id:
        raise LookupError(objection_id)
    return objection


def _working_days_left(today: dt.date, due: dt.datetime) -> int:
    return workdays.working_days_between(today, workdays.local_date(due))


@dataclass
class QueueItem:
    objection: Objection
    stage: str  # "flag" (to be marked) or "decide"
    due: dt.datetime  # the next deadline
    days_left: int  # working days from today (Beijing) to the due day; 0 = due today
    overdue: bool
    decision_days_left: int
    decision_overdue: bool


def status_of(objection: Objection, now: dt.datetime | None = None) -> QueueItem:
    now = now or utcnow()
    today = workdays.local_date(now)
    stage = "flag" if objection.status is ObjectionStatus.FILED else "decide"
    due = objection.flag_by if stage == "flag" else objection.decide_by
    return QueueItem(
        objection=objection,
        stage=stage,
        due=due,
        days_left=_working_days_left(today, due),
        overdue=objection.is_open and now > due,
        decision_days_left=_working_days_left(today, objection.decide_by),
        decision_overdue=objection.is_open and now > objection.decide_by,
    )


def queue(now: dt.datetime | None = None) -> list[QueueItem]:
    """Open objections, the most urgent deadline first, with working days left and overdue."""
    now = now or utcnow()
    open_ = db.session.scalars(
        sa.select(Objection)
        .options(selectinload(Objection.enterprise))
        .where(Objection.status.in_(OPEN_OBJECTION_STATUSES))
    ).all()
    items = [status_of(o, now) for o in open_]
    items.sort(key=lambda i: (i.due, i.objection.decide_by, i.objection.id))
    return items


def recently_decided(limit: int = 50) -> list[Objection]:
    return list(
        db.session.scalars(
            sa.select(Objection)
            .options(selectinload(Objection.enterprise))
            .where(Objection.status.not_in(OPEN_OBJECTION_STATUSES))
            .order_by(Objection.decided_at.desc(), Objection.id.desc())
            .limit(limit)
        )
    )


def records_of(items: Iterable[Objection]) -> dict[tuple[str, int], SourceRecord]:
    """The records these objections name, by (table, id), one statement per record table
    (a list describing each objection reads them here, not one by one)."""
    wanted: dict[str, set[int]] = {}
    for objection in items:
        if objection.record_table is not None and objection.record_id is not None:
            wanted.setdefault(objection.record_table, set()).add(objection.record_id)
    found: dict[tuple[str, int], SourceRecord] = {}
    for table, ids in wanted.items():
        model = RECORD_MODELS[table]
        for record in db.session.scalars(sa.select(model).where(model.id.in_(sorted(ids)))):
            found[(table, record.id)] = record
    return found


@dataclass
class Marks:
    """What of one enterprise is under objection right now."""

    records: dict[tuple[str, tuple[str, ...]], int] = field(default_factory=dict)
    profile: int | None = None  # the open objection's id

    def objection_of(self, record: Any, table: str | None = None) -> int | None:
        """The open objection to ``record`` (a record, or a row of ``table``), if any."""
        if not self.records:  # the usual case: nothing of the enterprise is disputed
            return None
        table = table or getattr(record, "__tablename__", None)
        if table is None:
            return None
        return self.records.get((table, record_key(table, record)))

    def has(self, record: Any, table: str | None = None) -> bool:
        return self.objection_of(record, table) is not None

    def public_credit(self, public_record_id: str) -> bool:
        return (schema.PUBLIC_CREDIT, (str(public_record_id),)) in self.records

    def __bool__(self) -> bool:
        return bool(self.records) or self.profile is not None


def disputed_column(enterprise_id: Any) -> sa.ColumnElement[bool]:
    """A SQL column: whether anything of ``enterprise_id`` (a column or a value) is under an
    open objection. A page that reads the enterprise anyway asks with it, and reads the
    marks (:func:`marks_for`) only when there are some: most enterprises have none."""
    return sa.exists().where(
        Objection.enterprise_id == enterprise_id,
        Objection.status.in_(OPEN_OBJECTION_STATUSES),
    )


def marks_for(enterprise_id: int) -> Marks:
    marks = Marks()
    for objection in db.session.execute(_open_objections(), {"enterprise_id": enterprise_id}):
        if objection.target is ObjectionTarget.PROFILE:
            marks.profile = objection.id
        else:
            key = (objection.record_table or "", tuple(objection.record_key or ()))
            marks.records[key] = objection.id
    return marks


@cache
def _open_objections() -> sa.Select[int, ObjectionTarget, str | None, list[str] | None]:
    """What marks an enterprise's open objections need (binds ``enterprise_id``), built once:
    every profile page a bank opens marks what is under objection (columns, not whole
    objections, whose loading cost more than the query)."""
    return sa.select(
        Objection.id, Objection.target, Objection.record_table, Objection.record_key
    ).where(
        Objection.enterprise_id == sa.bindparam("enterprise_id"),
        Objection.status.in_(OPEN_OBJECTION_STATUSES),
    )


def describe_record(table: str | None, record: Any) -> str:
    """ "Tax payments 2026-05 VAT" — what the record is, for lists."""
    if table is None or record is None:
        return ""
    return f"{SOURCE_LABELS.get(table, table)} {' '.join(record_key(table, record))}"


# ---------------------------------------------------------------------------------------------
# Demo
# ---------------------------------------------------------------------------------------------
def seed_demo_objections() -> int:
    """A few objections in every state and a credit repair for the first demo enterprises
    with records (a second run adds none). Returns the number of objections created."""
    from app.services import credit_repair
    from app.services.demo import DEMO_LOGINS
    from models.records import PublicCreditRecord, TaxRecord

    if db.session.scalar(sa.select(sa.func.count()).select_from(Objection)):
        return 0
    office = db.session.scalar(sa.select(User).where(User.email == DEMO_LOGINS["office"]))
    if office is None:
        return 0
    users = db.session.scalars(
        sa.select(User)
        .join(Enterprise, Enterprise.organization_id == User.organization_id)
        .where(User.role == Role.ADMIN)
        .order_by(Enterprise.id)
        .limit(40)
    ).all()
    now = utcnow()
    plan = ["filed", "flagged", "flagged_other", "upheld", "rejected", "overdue"]
    created = 0
    for user in users:
        if created >= len(plan):
            break
        enterprise = enterprises.enterprise_of(user)
        tax = latest_records(enterprise.id, schema.TAX, limit=1)
        if not tax:
            continue
        record = tax[0]
        assert isinstance(record, TaxRecord)  # noqa: S101
        target = plan[created]
        filed_at = now - dt.timedelta(days=10) if target == "overdue" else now
        objection = file(
            user,
            text="该月申报销售额与我司纳税申报表不符，附申报表截图。",
            table=schema.TAX,
            record_id=record.id,
            uploads=[Upload("申报表.pdf", b"%PDF-1.4\n% demo evidence\n%%EOF\n")],
            now=filed_at,
        )
        created += 1
        if target in ("flagged", "flagged_other", "upheld", "rejected"):
            flag(office, objection, needs_other_unit=target == "flagged_other", now=now)
        if target == "upheld":
            sales = (record.declared_sales * Decimal("1.10")).quantize(Decimal("0.01"))
            decide(office, objection, uphold=True, reason="经税务部门核实，已更正。",
                   corrections={"declared_sales": str(sales)}, now=now)  # fmt: skip
        elif target == "rejected":
            decide(office, objection, uphold=False,
                   reason="经核查，该记录与税务部门登记一致，不予更正。", now=now)  # fmt: skip
    # one repair application on a general public-credit record
    repairable = db.session.scalars(
        sa.select(PublicCreditRecord)
        .where(
            PublicCreditRecord.severity == "general",
            PublicCreditRecord.repaired_on.is_(None),
            PublicCreditRecord.record_type != "commendation",
        )
        .order_by(PublicCreditRecord.id)
        .limit(20)
    ).all()
    for record in repairable:
        owner = db.session.scalar(
            sa.select(User)
            .join(Enterprise, Enterprise.organization_id == User.organization_id)
            .where(Enterprise.id == record.enterprise_id, User.role == Role.ADMIN)
        )
        if owner is None or latest_version(schema.PUBLIC_CREDIT, record).id != record.id:
            continue
        credit_repair.apply(
            owner,
            record.id,
            text="已按处罚决定缴清罚款并完成整改，附缴款凭证。",
            uploads=[Upload("缴款凭证.pdf", b"%PDF-1.4\n% demo evidence\n%%EOF\n")],
            now=now,
        )
        break
    db.session.flush()
    return created
