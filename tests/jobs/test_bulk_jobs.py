"""Bulk ingestion of a CSV file and batch matching run as chunked jobs; a chunk done again
(its worker died after the work, before the finish) stores nothing twice."""

from __future__ import annotations

import csv
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from app import jobs
from app.extensions import db
from app.services import bulk_jobs
from models import ChunkStatus, IngestionBatch, Job, JobChunk, JobStatus
from models.records import TaxRecord
from tests.conftest import Factory
from tests.services.test_ingestion import _enterprise, _tax

PERIODS = ["2026-05", "2026-06", "2026-07", "2026-08", "2026-09"]


def _csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_csv_file_is_ingested_in_chunks_once_even_when_a_chunk_is_redone(
    app: Flask, app_ctx: Flask, factory: Factory, tmp_path: Path, monkeypatch
) -> None:
    enterprises = [_enterprise(factory)[0] for _ in range(2)]
    rows = [_tax(e.uscc, period=p) for e in enterprises for p in PERIODS]  # 10 rows
    path = _csv(tmp_path / "tax.csv", rows)
    sent: list[int] = []
    monkeypatch.setattr(jobs.EagerRunner, "submit_chunks", lambda self, app, ids: sent.extend(ids))
    job_id = bulk_jobs.start_bulk_ingestion(
        "tax", path, provider="tax-bureau", idempotency_key="monthly-2026-10", rows_per_chunk=4
    ).id
    db.session.commit()
    assert len(sent) == 3
    monkeypatch.undo()
    # The first chunk's worker ingests, then "dies" before finishing: its work is rolled
    # back with it (one transaction), the reaper would hand the chunk out again.
    first = sent[0]
    claim = jobs.claim_chunk(first, "doomed")
    assert claim is not None
    chunk = db.session.get(JobChunk, first)
    job = db.session.get(Job, job_id)
    assert chunk is not None and job is not None
    bulk_jobs._ingest_chunk(job, dict(chunk.payload))
    db.session.rollback()
    db.session.execute(
        sa.update(JobChunk).where(JobChunk.id == first).values(status=ChunkStatus.PENDING)
    )
    db.session.commit()
    for chunk_id in sent:
        assert jobs.run_chunk(app, chunk_id)
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None and job.status is JobStatus.SUCCEEDED, job and job.message
    assert (job.steps_done, job.steps_total) == (10, 10)
    assert job.result["accepted"] == 10 and job.result["rows"] == 10
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TaxRecord)) == 10
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IngestionBatch)) == 3
    # the whole job again under the same key: every chunk finds its batch, nothing is added
    again = bulk_jobs.start_bulk_ingestion(
        "tax", path, provider="tax-bureau", idempotency_key="monthly-2026-10", rows_per_chunk=4
    ).id
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Job, again).status is JobStatus.SUCCEEDED
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TaxRecord)) == 10


def test_batch_matching_counts_every_enterprise_once(
    app: Flask, app_ctx: Flask, factory: Factory, monkeypatch
) -> None:
    for _ in range(5):
        factory.enterprise()
    monkeypatch.setitem(app.config, "MATCH_CHUNK", 2)
    job_id = bulk_jobs.start_batch_matching().id
    db.session.commit()
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None and job.status is JobStatus.SUCCEEDED, job.message
    assert job.result["enterprises"] == 5 and (job.steps_done, job.steps_total) == (5, 5)
    assert (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(JobChunk).where(JobChunk.job_id == job_id)
        )
        == 3
    )
