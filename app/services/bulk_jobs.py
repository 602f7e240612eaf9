"""Long bulk work as chunked jobs (:mod:`app.jobs`): a CSV file ingested in row ranges, and
every enterprise matched against every published product.

``ingestion.bulk``
    ``start_bulk_ingestion(source, path, provider=..., idempotency_key=...)``: one chunk per
    ``rows_per_chunk`` data rows of the CSV file; each chunk is one
    :func:`app.services.ingestion.ingest_rows` batch under the key ``<key>:<chunk index>``, so
    a chunk done again (its worker died, PostgreSQL restarted) finds its batch and writes
    nothing twice. When the last chunk is done, the profiles of the enterprises whose
    records changed are recomputed by a ``profiles.recompute`` job.
``matching.batch``
    ``start_batch_matching()``: one chunk per ``MATCH_CHUNK`` enterprises, each evaluated
    against all published products with the vectorized engine; the job's result counts the
    eligible pairs and the enterprises with at least one eligible product. It writes
    nothing, so doing a chunk twice is harmless.
"""

from __future__ import annotations

import csv
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from flask import current_app

from app.jobs import chunked_job, enqueue
from app.services import ingestion, matching
from app.services.matching_engine import eligibility
from models import Enterprise, IngestionBatch, Job, LoanProduct, User, db
from models.product import ProductStatus

INGEST_JOB = "ingestion.bulk"
MATCH_JOB = "matching.batch"
ROWS_PER_CHUNK = 50_000
MATCH_CHUNK = 5_000


# Bulk ingestion ------------------------------------------------------------------------------
def start_bulk_ingestion(
    source: str,
    path: str | Path,
    *,
    provider: str,
    idempotency_key: str,
    actor: User | None = None,
    rows_per_chunk: int = ROWS_PER_CHUNK,
) -> Job:
    """Queue the ingestion of the CSV file at ``path`` (header = ``ml.schema`` columns) in
    chunks of ``rows_per_chunk`` rows; runs after the caller commits. Raises
    :class:`app.services.ingestion.UnknownSource` for an unknown source."""
    ingestion.required_columns(source)  # refuses an unknown source now, not in a worker
    return enqueue(
        INGEST_JOB,
        source=source,
        path=str(path),
        provider=provider,
        key=idempotency_key,
        rows_per_chunk=int(rows_per_chunk),
        requested_by_user_id=actor.id if actor else None,
    )


def _count_rows(path: str) -> int:
    with open(path, newline="", encoding="utf-8") as fh:
        return max(0, sum(1 for _ in fh) - 1)


def _plan_ingestion(job: Job) -> list[tuple[dict[str, Any], int]]:
    total = _count_rows(str(job.params["path"]))
    size = int(job.params.get("rows_per_chunk") or ROWS_PER_CHUNK)
    return [
        ({"first": first, "count": min(size, total - first)}, min(size, total - first))
        for first in range(0, total, size)
    ]


def _finish_ingestion(job: Job, results: list[dict[str, Any]]) -> None:
    batch_ids = [int(r["batch_id"]) for r in results if r.get("batch_id") is not None]
    if not batch_ids or not int((job.result or {}).get("accepted", 0)) + int(
        (job.result or {}).get("corrected", 0)
    ):
        return
    from app.services import profiles

    source = str(job.params["source"])
    model = ingestion.RECORD_MODELS[source]
    changed = db.session.scalars(
        sa.select(model.enterprise_id).where(model.batch_id.in_(batch_ids)).distinct()
    ).all()
    profiles.records_changed([int(i) for i in changed])


@chunked_job(INGEST_JOB, plan=_plan_ingestion, finish=_finish_ingestion)
def _ingest_chunk(job: Job, payload: dict[str, Any]) -> dict[str, Any]:
    first, count = int(payload["first"]), int(payload["count"])
    with open(str(job.params["path"]), newline="", encoding="utf-8") as fh:
        rows = list(islice(csv.DictReader(fh), first, first + count))
    batch: IngestionBatch = ingestion.ingest_rows(
        str(job.params["source"]),
        rows,
        provider=str(job.params["provider"]),
        idempotency_key=f"{job.params['key']}:{first}",
        actor=None,
        first_line=first + 2,
        recompute_profiles=False,
    )
    return {
        "batch_id": str(batch.id),  # text: not summed into the job's totals
        "rows": batch.rows_total,
        "accepted": batch.accepted,
        "corrected": batch.corrected,
        "duplicates": batch.duplicates,
        "rejected": batch.rejected,
    }


# Batch matching ------------------------------------------------------------------------------
def start_batch_matching() -> Job:
    """Queue the matching of every enterprise against every published product."""
    return enqueue(MATCH_JOB)


def _plan_matching(job: Job) -> list[tuple[dict[str, Any], int]]:
    ids = list(db.session.scalars(sa.select(Enterprise.id).order_by(Enterprise.id)))
    size = int(current_app.config.get("MATCH_CHUNK", MATCH_CHUNK))
    return [({"ids": ids[i : i + size]}, len(ids[i : i + size])) for i in range(0, len(ids), size)]


@chunked_job(MATCH_JOB, plan=_plan_matching)
def _match_chunk(job: Job, payload: dict[str, Any]) -> dict[str, Any]:
    ids = [int(i) for i in payload["ids"]]
    products = list(
        db.session.scalars(
            sa.select(LoanProduct)
            .where(LoanProduct.status == ProductStatus.PUBLISHED)
            .order_by(LoanProduct.id)
        )
    )
    enterprises = list(
        db.session.scalars(
            sa.select(Enterprise).where(Enterprise.id.in_(ids)).order_by(Enterprise.id)
        )
    )
    if not products or not enterprises:
        return {"enterprises": len(enterprises), "eligible_pairs": 0, "with_match": 0}
    ok = eligibility(matching.facts_of(enterprises), matching.rules_of(products))
    return {
        "enterprises": len(enterprises),
        "eligible_pairs": int(ok.sum()),
        "with_match": int(np.count_nonzero(ok.any(axis=1))),
    }
