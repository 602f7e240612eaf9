"""The audit chain's verification as a chunked job: the office's "Verify the chain" button.

A province's trail holds tens of millions of events: walked in a web request, it would
outlast any request timeout. The job splits the chain as it stands when the job starts into
ranges of ``AUDIT_VERIFY_CHUNK`` events (100,000), each checked on its own
(:func:`audit.verify_range`: linked to the event before the range, content matching its hash,
none missing), so the workers share them and the page shows the progress; the job's result
names the first problem of the whole chain.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.jobs import chunked_job, enqueue
from app.services import audit
from models import AuditEvent, Job, JobStatus, User, db

VERIFY_JOB = "audit.verify"
VERIFY_CHUNK = 100_000


def start(actor: User | None) -> Job:
    """Queue a verification of the chain up to its current end (it runs once the caller
    commits); one already queued or running is returned instead of a second."""
    running = db.session.scalar(
        sa.select(Job)
        .where(Job.kind == VERIFY_JOB, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        .order_by(Job.id.desc())
    )
    if running is not None:
        return running
    last = db.session.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0
    return enqueue(VERIFY_JOB, steps_total=int(last), last_seq=int(last),
                   requested_by=actor.id if actor else None)  # fmt: skip


def _plan(job: Job) -> list[tuple[dict[str, Any], int]]:
    last = int(job.params["last_seq"])
    size = int(current_app.config.get("AUDIT_VERIFY_CHUNK", VERIFY_CHUNK))
    return [
        (
            {"first": first, "last": min(last, first + size - 1)},
            min(last, first + size - 1) - first + 1,
        )
        for first in range(1, last + 1, size)
    ]


def _finish(job: Job, results: list[dict[str, Any]]) -> None:
    """The chain's report: the first problem of all the ranges (ranges are in order)."""
    broken = [r["broken"] for r in results if r.get("broken")]
    checked = sum(int(r.get("checked", 0)) for r in results)
    if broken:
        first = min(broken, key=lambda b: int(b["seq"]))
        job.result = {"ok": False, "checked": int(first["seq"]) - 1, "seq": int(first["seq"]),
                      "event_id": first["id"], "problem": first["problem"],
                      "kind": first["kind"], "numbers": first["numbers"]}  # fmt: skip
    else:
        job.result = {"ok": True, "checked": checked}


@chunked_job(VERIFY_JOB, plan=_plan, finish=_finish)
def _verify_chunk(job: Job, payload: dict[str, Any]) -> dict[str, Any]:
    report = audit.verify_range(int(payload["first"]), int(payload["last"]))
    broken = None
    if not report.ok:
        broken = {"seq": report.first_broken_seq, "id": report.first_broken_id,
                  "problem": report.problem, "kind": report.kind,
                  "numbers": list(report.numbers)}  # fmt: skip
    return {"checked": report.checked, "broken": broken}


def report_of(job: Job) -> audit.ChainReport | None:
    """A finished job's report (None while it runs, or if it failed)."""
    result = job.result or {}
    if job.status is not JobStatus.SUCCEEDED or "ok" not in result:
        return None
    if result["ok"]:
        return audit.ChainReport(True, int(result["checked"]))
    return audit.ChainReport(False, int(result["checked"]), int(result["seq"]),
                             result.get("event_id"), str(result["problem"]), result.get("kind"),
                             tuple(result.get("numbers") or ()))  # fmt: skip
