"""Collecting an enterprise's records from providers, under its collection authorization.

``start_collection`` (called right after a collection grant) queues a job that fetches each
authorized scope in turn. For every scope it asks the policy (``authorization.decide``) at
the moment of fetching and again before storing, so a revocation, pause or expiry during
the job stops the remaining scopes; fetched rows go through ``ingestion.ingest_rows``
(validation, minimisation, versioning, dedupe) inside a savepoint, so a scope is stored
whole or not at all. The job's ``result`` says, per scope, what happened:

``{"tax": {"status": "succeeded", "accepted": 30, "corrected": 0, "duplicates": 0,
"rejected": 0, "batches": [12, 13]}, "utilities": {"status": "failed", "reason":
"timeout", "message": "…"}, "provident_fund": {"status": "refused", "reason": "revoked",
"message": "…"}}``

``coverage`` summarizes what is stored per scope for the freshness and coverage badges.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

from app import jobs
from app.connectors import ConnectorError, FailureReason, connector_for
from app.services import audit, ingestion, workdays
from app.services.authorization import SCOPE_LABELS, Action, Decision, decide, record_use
from ml import schema
from models import (
    Authorization,
    AuthorizationKind,
    Enterprise,
    FetchFrequency,
    Job,
    JobStatus,
    User,
    db,
)
from models.base import utcnow
from models.records import RECORD_MODELS

JOB_KIND = "collection"

STEP_MESSAGES: dict[str, Any] = {
    FailureReason.TIMEOUT.value: _l("The provider did not answer in time; nothing was stored."),
    FailureReason.UNAVAILABLE.value: _l(
        "The provider is unavailable at the moment; nothing was stored."
    ),
    FailureReason.REJECTED.value: _l("The provider refused the request; nothing was stored."),
    FailureReason.AUTH.value: _l("The platform could not sign in to the provider."),
    FailureReason.MALFORMED.value: _l(
        "The provider sent data in an unexpected form; nothing of it was stored."
    ),
    FailureReason.CIRCUIT_OPEN.value: _l(
        "The provider failed repeatedly just now; the platform will try again later."
    ),
    FailureReason.NOT_CONFIGURED.value: _l("No provider is connected for this kind of data."),
    "ingestion_failed": _l("The records could not be stored; nothing of them was kept."),
}


# Why the policy refused a collection (``Decision.reason``), in the policy's own words.
REFUSAL_MESSAGES: dict[str, Any] = {
    "revoked": _l("The enterprise has revoked this authorization."),
    "expired": _l("The authorization has expired."),
    "paused": _l("The enterprise has paused this authorization."),
    "not_yet_valid": _l("The authorization is not valid yet."),
    "no_grant": _l("The enterprise has not authorized this."),
    "scope_not_granted": _l("This kind of data is not covered by the authorization."),
    "outside_data_range": _l("This month is outside the authorized data range."),
}


def step_message(outcome: dict[str, Any]) -> str:
    """A job step's outcome in words, in the current language (``outcome["message"]`` is
    the same in the platform's default language, kept for readers without Babel)."""
    reason = str(outcome.get("reason", ""))
    table = REFUSAL_MESSAGES if outcome.get("status") == "refused" else STEP_MESSAGES
    message = table.get(reason)
    return str(message) if message is not None else str(outcome.get("message", ""))


def start_collection(authorization_id: int, actor: User | None) -> Job:
    """Queue the collection of every scope of a collection authorization.

    The job runs after the caller commits. Raises ``ValueError`` for an id that is not a
    collection authorization.
    """
    grant = db.session.get(Authorization, authorization_id)
    if grant is None or grant.kind is not AuthorizationKind.COLLECTION:
        raise ValueError(f"authorization {authorization_id} is not a collection authorization")
    scopes = grant.scope_list
    job = jobs.enqueue(
        JOB_KIND,
        enterprise_id=grant.enterprise_id,
        authorization_id=grant.id,
        steps_total=len(scopes),
        scopes=scopes,
        requested_by_user_id=actor.id if actor else None,
    )
    job.result = {scope: {"status": "waiting"} for scope in scopes}
    db.session.flush()
    return job


REFRESH_INTERVAL = dt.timedelta(days=30)


def due_collections(now: dt.datetime | None = None) -> list[Authorization]:
    """Live monthly collection grants whose last collection started over
    :data:`REFRESH_INTERVAL` ago (or never). One query, whatever the number of grants."""
    now = now or utcnow()
    last_job = (
        sa.select(Job.authorization_id, sa.func.max(Job.created_at).label("last"))
        .where(Job.kind == JOB_KIND, Job.authorization_id.is_not(None))
        .group_by(Job.authorization_id)
        .subquery()
    )
    return list(
        db.session.scalars(
            sa.select(Authorization)
            .outerjoin(last_job, last_job.c.authorization_id == Authorization.id)
            .where(
                Authorization.kind == AuthorizationKind.COLLECTION,
                Authorization.fetch_frequency == FetchFrequency.MONTHLY,
                Authorization.revoked_at.is_(None),
                Authorization.paused_at.is_(None),
                Authorization.valid_from <= now,
                Authorization.valid_until > now,
                sa.or_(last_job.c.last.is_(None), last_job.c.last <= now - REFRESH_INTERVAL),
            )
            .order_by(Authorization.id)
        )
    )


def start_due_collections(now: dt.datetime | None = None) -> list[Job]:
    """Queue a collection for every due monthly grant (run by ``flask collection run-due``
    from cron or, later, a Celery beat schedule); they run after the caller commits."""
    return [start_collection(grant.id, None) for grant in due_collections(now)]


def _months(first: dt.date, last: dt.date) -> list[str]:
    """``YYYY-MM`` of every month from ``first`` to ``last`` (day ignored)."""
    start, end = first.year * 12 + first.month - 1, last.year * 12 + last.month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(start, end + 1)]


def _last_complete_month(now: dt.datetime) -> dt.date:
    first_of_month = workdays.local_date(now).replace(day=1)
    return (first_of_month - dt.timedelta(days=1)).replace(day=1)


def _in_default_locale(message: Any) -> str:
    with force_locale(current_app.config.get("BABEL_DEFAULT_LOCALE", "zh")):
        return str(message)


def _set_step(job: Job, scope: str, outcome: dict[str, Any]) -> None:
    result = dict(job.result or {})
    result[scope] = outcome
    job.result = result  # a new dict, so the JSON column is written
    job.steps_done = min(job.steps_total, job.steps_done + 1)


def _decide_now(enterprise: Enterprise, scope: str) -> Decision:
    """The policy's answer from the database as it is now: the job's session may hold
    grants loaded before the enterprise revoked one in another session."""
    db.session.expire_all()
    return decide(None, Action.COLLECT, enterprise, scope)


def _plan_collection(job: Job) -> list[tuple[dict[str, Any], int]]:
    """One chunk for the grant's scopes, which run in order with the consent checked before
    and after each fetch; the chunk reports its progress per scope itself (size 0) and
    commits each scope as it is stored. Done again after a worker died, it goes on from the
    first scope not stored (see :func:`run_collection`)."""
    return [({"scopes": list(job.params.get("scopes") or [])}, 0)]


@jobs.chunked_job(JOB_KIND, plan=_plan_collection)
def _collection_chunk(job: Job, payload: dict[str, Any]) -> dict[str, Any]:
    run_collection(job)
    return {}


def run_collection(job: Job) -> None:
    """The job body: fetch, check, store, report — one scope at a time, committing each."""
    grant = db.session.get(Authorization, job.authorization_id)
    if grant is None:
        raise LookupError(f"authorization {job.authorization_id} no longer exists")
    enterprise = grant.enterprise
    connector = connector_for(current_app.config)
    scopes: list[str] = list(job.params.get("scopes") or grant.scope_list)
    failed: list[str] = []
    # Each scope commits as it is stored: done again after its worker died, the chunk skips
    # the scopes an earlier attempt stored (no second fetch, use or audit event for them).
    stored_before = {
        scope for scope, step in (job.result or {}).items() if step.get("status") == "succeeded"
    }
    for index, scope in enumerate(scopes):
        if scope in stored_before:
            continue
        decision = _decide_now(enterprise, scope)
        if not decision.allowed:
            _stop(job, scopes[index:], decision.reason, decision.message)
            _recompute_profile(job, enterprise)
            return
        window = db.session.get(Authorization, decision.authorization_id) or grant
        last = min(window.data_to, _last_complete_month(utcnow()))
        months = _months(window.data_from, last) if last >= window.data_from else []
        if not months:
            _set_step(job, scope, {"status": "succeeded", "accepted": 0, "months": 0})
            db.session.commit()
            continue
        try:
            tables = connector.fetch(enterprise.uscc, scope, months)
        except ConnectorError as error:
            failed.append(scope)
            _record_failure(job, enterprise, scope, error.reason.value, error.detail)
            continue
        # The fetch may have taken a while: the enterprise may have revoked meanwhile.
        decision = _decide_now(enterprise, scope)
        if not decision.allowed:
            _stop(job, scopes[index:], decision.reason, decision.message)
            _recompute_profile(job, enterprise)
            return
        try:
            outcome = _store(job, enterprise, scope, tables, connector.provider_name(scope))
        except Exception as exc:  # reported on the step; the savepoint rolled the scope back
            current_app.logger.exception("collection job %s: storing %s failed", job.id, scope)
            failed.append(scope)
            _record_failure(job, enterprise, scope, "ingestion_failed", f"{type(exc).__name__}")
            continue
        record_use(decision)
        _set_step(job, scope, outcome)
        db.session.commit()
    if failed:
        job.status = JobStatus.FAILED
        locale = str(current_app.config.get("BABEL_DEFAULT_LOCALE", "zh"))
        with force_locale(locale):
            names = ("、" if locale.startswith("zh") else ", ").join(
                str(SCOPE_LABELS.get(scope, scope)) for scope in failed
            )
            job.message = str(_l("Some data could not be collected: %(s)s.", s=names))
    job.finished_at = utcnow()
    db.session.commit()
    _recompute_profile(job, enterprise)


def _recompute_profile(job: Job, enterprise: Enterprise) -> None:
    """One profile recompute for the job, if any scope brought new or corrected records."""
    from app.services import profiles

    steps = (job.result or {}).values()
    if any(int(s.get("accepted", 0)) + int(s.get("corrected", 0)) for s in steps):
        profiles.records_changed([enterprise.id])
        db.session.commit()


def _store(
    job: Job,
    enterprise: Enterprise,
    scope: str,
    tables: dict[str, list[dict[str, str]]],
    provider: str,
) -> dict[str, Any]:
    totals = {"accepted": 0, "corrected": 0, "duplicates": 0, "rejected": 0}
    batches: list[int] = []
    with db.session.begin_nested():
        for table in schema.SCOPE_TABLES[scope]:
            rows = tables.get(table) or []
            if not rows:
                continue
            batch = ingestion.ingest_rows(
                table,
                rows,
                provider=provider,
                idempotency_key=f"collection-job-{job.id}-{table}",
                actor=None,
                recompute_profiles=False,  # once for the whole job, see run_collection
            )
            batches.append(batch.id)
            for name in totals:
                totals[name] += int(getattr(batch, name))
        audit.record(
            "collection.fetch",
            actor=None,
            enterprise_id=enterprise.id,
            scope=scope,
            object_type="job",
            object_id=job.id,
            details={"provider": provider, "batches": batches, **totals},
        )
    return {"status": "succeeded", **totals, "batches": batches}


def _record_failure(job: Job, enterprise: Enterprise, scope: str, reason: str, detail: str) -> None:
    db.session.rollback()
    job = db.session.get(Job, job.id) or job
    message = STEP_MESSAGES.get(reason, _l("The data could not be collected."))
    _set_step(
        job,
        scope,
        {
            "status": "failed",
            "reason": reason,
            "message": _in_default_locale(message),
            "detail": detail,
        },
    )
    audit.record(
        "collection.failed",
        actor=None,
        enterprise_id=enterprise.id,
        scope=scope,
        object_type="job",
        object_id=job.id,
        details={"reason": reason, "detail": detail},
    )
    db.session.commit()


def _stop(job: Job, remaining: list[str], reason: str, message: Any) -> None:
    """The policy refused: mark the remaining scopes refused and the job failed, saying why."""
    for scope in remaining:
        _set_step(
            job,
            scope,
            {"status": "refused", "reason": reason, "message": _in_default_locale(message)},
        )
    job.status = JobStatus.FAILED
    job.message = _in_default_locale(
        _l("Collection stopped: %(why)s", why=_in_default_locale(message))
    )
    job.finished_at = utcnow()
    for scope in remaining:
        audit.record(
            "collection.stopped",
            actor=None,
            enterprise_id=job.enterprise_id,
            scope=scope,
            object_type="job",
            object_id=job.id,
            details={"reason": reason},
        )
    db.session.commit()


# Coverage ------------------------------------------------------------------------------

# The table whose months show a scope's coverage.
COVERAGE_TABLE = {scope: tables[0] for scope, tables in schema.SCOPE_TABLES.items()}


@dataclass(frozen=True)
class Coverage:
    scope: str
    last_update: dt.datetime | None  # when the latest record arrived
    first_month: str | None
    last_month: str | None
    months_covered: int
    gaps: list[str]  # months between first and last with no record, "YYYY-MM"

    @property
    def has_data(self) -> bool:
        return self.months_covered > 0


def coverage(enterprise: Enterprise) -> dict[str, Coverage]:
    """Per scope: when records last arrived, which months are covered, which are missing.

    One aggregate query per scope; only the distinct months (at most a few dozen) reach Python.
    """
    out: dict[str, Coverage] = {}
    for scope, table in COVERAGE_TABLE.items():
        model = RECORD_MODELS[table]
        period = getattr(model, schema.PERIOD_COLUMN[table])
        rows = db.session.execute(
            sa.select(period, sa.func.max(model.received_at))
            .where(model.enterprise_id == enterprise.id)
            .group_by(period)
            .order_by(period)
        ).all()
        months = [str(row[0]) for row in rows]
        last_update = max((row[1] for row in rows), default=None)
        gaps: list[str] = []
        if months:
            present = set(months)
            first = dt.date(int(months[0][:4]), int(months[0][5:7]), 1)
            last = dt.date(int(months[-1][:4]), int(months[-1][5:7]), 1)
            gaps = [m for m in _months(first, last) if m not in present]
        out[scope] = Coverage(
            scope=scope,
            last_update=last_update,
            first_month=months[0] if months else None,
            last_month=months[-1] if months else None,
            months_covered=len(months),
            gaps=gaps,
        )
    return out
