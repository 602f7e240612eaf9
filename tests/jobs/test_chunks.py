"""Chunked jobs: chunks recorded in the database, claimed and finished once, retried after a
failure, and a dead worker's chunk requeued by the reaper so every item is done exactly once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app import jobs
from app.extensions import db
from app.services import profiles
from models import ChunkStatus, CreditProfile, Enterprise, Job, JobChunk, JobStatus
from tests.conftest import Factory

done_items: list[int] = []
failures: dict[int, int] = {}


def _plan_numbers(job: Job) -> list[tuple[dict[str, Any], int]]:
    n, size = int(job.params["n"]), int(job.params["size"])
    return [({"first": i, "last": min(n, i + size) - 1}, min(n, i + size) - i)
            for i in range(0, n, size)]  # fmt: skip


@jobs.chunked_job("test-numbers", plan=_plan_numbers)
def _numbers(job: Job, payload: dict[str, Any]) -> dict[str, Any]:
    first, last = int(payload["first"]), int(payload["last"])
    left = failures.get(first, 0)
    if left:
        failures[first] = left - 1
        raise RuntimeError(f"chunk at {first} failed")
    done_items.extend(range(first, last + 1))
    return {"items": last - first + 1}


@pytest.fixture(autouse=True)
def _reset() -> None:
    done_items.clear()
    failures.clear()
    kill_planning.clear()
    finished_jobs.clear()
    failing_finish.clear()


def fetch(job_id: int) -> Job:
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    return job


def chunks_of(job_id: int) -> list[JobChunk]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(JobChunk).where(JobChunk.job_id == job_id).order_by(JobChunk.index)
        )
    )


def test_a_chunked_job_records_its_chunks_and_finishes_each_once(app_ctx: Flask) -> None:
    job_id = jobs.enqueue("test-numbers", n=10, size=4).id
    db.session.commit()
    job = fetch(job_id)
    assert job.status is JobStatus.SUCCEEDED, job.message
    assert (job.steps_done, job.steps_total) == (10, 10)
    assert job.result == {"items": 10}
    assert sorted(done_items) == list(range(10))
    chunks = chunks_of(job_id)
    assert [(c.index, c.size, c.status, c.attempts) for c in chunks] == [
        (0, 4, ChunkStatus.DONE, 1), (1, 4, ChunkStatus.DONE, 1), (2, 2, ChunkStatus.DONE, 1)
    ]  # fmt: skip
    assert all(c.claimed_by and c.finished_at and c.result for c in chunks)
    # a redelivered message for a finished chunk or job changes nothing
    assert jobs.run_chunk(app_ctx, chunks[0].id) is False
    jobs.run(app_ctx, job_id)
    assert sorted(done_items) == list(range(10))


def test_a_failed_chunk_is_tried_again_and_the_job_still_completes(app_ctx: Flask) -> None:
    failures[4] = 2  # the second chunk fails twice, then works (3 attempts allowed)
    job_id = jobs.enqueue("test-numbers", n=10, size=4).id
    db.session.commit()
    job = fetch(job_id)
    assert job.status is JobStatus.SUCCEEDED, job.message
    assert sorted(done_items) == list(range(10))
    assert [c.attempts for c in chunks_of(job_id)] == [1, 3, 1]


def test_a_chunk_failing_every_attempt_fails_the_job_with_its_message(app_ctx: Flask) -> None:
    failures[0] = 99
    job_id = jobs.enqueue("test-numbers", n=6, size=3).id
    db.session.commit()
    job = fetch(job_id)
    assert job.status is JobStatus.FAILED
    assert job.message == "RuntimeError: chunk at 0 failed"
    first = chunks_of(job_id)[0]
    assert (first.status, first.attempts) == (ChunkStatus.FAILED, 3)


def test_a_claim_is_exclusive_and_a_lost_claim_cannot_finish(app_ctx: Flask, monkeypatch) -> None:
    monkeypatch.setattr(jobs.EagerRunner, "submit_chunks", lambda self, app, ids: None)
    job_id = jobs.enqueue("test-numbers", n=4, size=4).id
    db.session.commit()
    (chunk,) = chunks_of(job_id)
    first = jobs.claim_chunk(chunk.id, "worker-a")
    assert first is not None
    assert jobs.claim_chunk(chunk.id, "worker-b") is None, "a running chunk is not claimed twice"
    # worker-a goes silent; the reaper hands the chunk out again and worker-b takes it
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    reaped = jobs.reap(app_ctx, later, send=False)
    assert reaped.chunks_requeued == [chunk.id]
    second = jobs.claim_chunk(chunk.id, "worker-b")
    assert second is not None
    chunk = chunks_of(job_id)[0]
    assert not jobs.finish_chunk(chunk, first, {"items": 4}), "worker-a's late finish is refused"
    db.session.rollback()
    assert jobs.finish_chunk(chunk, second, {"items": 4})
    db.session.commit()
    assert chunks_of(job_id)[0].status is ChunkStatus.DONE
    assert fetch(job_id).steps_done == 4


def test_the_reaper_requeues_a_dead_workers_chunk_and_each_enterprise_is_scored_once(
    app: Flask, app_ctx: Flask, factory: Factory, monkeypatch
) -> None:
    for _ in range(5):
        factory.enterprise()
    db.session.execute(sa.delete(CreditProfile))
    db.session.commit()
    monkeypatch.setattr(profiles, "CHUNK", 2)
    sent: list[int] = []
    monkeypatch.setattr(jobs.EagerRunner, "submit_chunks", lambda self, app, ids: sent.extend(ids))
    job_id = profiles.enqueue_recompute(None, trigger="rescore").id
    db.session.commit()
    assert len(sent) == 3 and fetch(job_id).status is JobStatus.RUNNING
    dead, *alive = sent
    # a worker claims the first chunk and dies (its work was never committed)
    assert jobs.claim_chunk(dead, "dead-worker") is not None
    for chunk_id in alive:
        assert jobs.run_chunk(app, chunk_id)
    job = fetch(job_id)
    assert job.status is JobStatus.RUNNING and (job.steps_done, job.steps_total) == (3, 5)
    monkeypatch.undo()  # the runner works again: the reaper's resend runs the chunk now
    monkeypatch.setattr(profiles, "CHUNK", 2)
    assert jobs.reap(app, dt.datetime.now(dt.UTC)).chunks_requeued == [], "a fresh heartbeat"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=121)
    assert jobs.reap(app, later).chunks_requeued == [dead]
    job = fetch(job_id)
    assert job.status is JobStatus.SUCCEEDED, job.message
    assert (job.steps_done, job.steps_total) == (5, 5) and job.result["profiles"] == 5
    counts = dict(
        db.session.execute(
            sa.select(CreditProfile.enterprise_id, sa.func.count())
            .group_by(CreditProfile.enterprise_id)
        ).all()
    )  # fmt: skip
    ids = db.session.scalars(sa.select(Enterprise.id)).all()
    assert counts == dict.fromkeys(ids, 1), "exactly one snapshot per enterprise"
    assert chunks_of(job_id)[0].attempts == 2


def test_the_reaper_resends_a_job_whose_message_was_lost(app: Flask, app_ctx: Flask) -> None:
    lost = Job(kind="test-numbers", status=JobStatus.QUEUED, params={"n": 3, "size": 3})
    db.session.add(lost)
    db.session.commit()
    assert jobs.reap(app).jobs_resent == [], "not yet: it may still be on its way"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert jobs.reap(app, later).jobs_resent == [lost.id]
    assert fetch(lost.id).status is JobStatus.SUCCEEDED
    assert sorted(done_items) == [0, 1, 2]


def test_flask_jobs_reap_resends_what_was_lost(app: Flask, app_ctx: Flask, runner) -> None:
    lost = Job(kind="test-numbers", status=JobStatus.QUEUED, params={"n": 2, "size": 1})
    db.session.add(lost)
    db.session.flush()
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    db.session.execute(sa.update(Job).where(Job.id == lost.id).values(created_at=long_ago))
    db.session.commit()
    result = runner.invoke(args=["jobs", "reap"])
    assert result.exit_code == 0, result.output
    assert "resent 0 chunk(s) and 1 job(s)" in result.output
    assert fetch(lost.id).status is JobStatus.SUCCEEDED


class Killed(BaseException):
    """The worker process killed where it stands (no ``except Exception`` sees it)."""


kill_planning: list[bool] = []
finished_jobs: list[int] = []


def _plan_or_die(job: Job) -> list[tuple[dict[str, Any], int]]:
    if kill_planning:
        kill_planning.pop()
        raise Killed
    return _plan_numbers(job)


failing_finish: list[bool] = []


def _count_finish(job: Job, results: list[dict[str, Any]]) -> None:
    if failing_finish:
        raise RuntimeError("the closing step failed")
    finished_jobs.append(job.id)


@jobs.chunked_job("test-fragile", plan=_plan_or_die, finish=_count_finish)
def _fragile(job: Job, payload: dict[str, Any]) -> dict[str, Any]:
    return _numbers(job, payload)


def test_a_worker_killed_while_planning_leaves_the_job_queued_for_the_reaper(
    app: Flask, app_ctx: Flask
) -> None:
    kill_planning.append(True)
    job_id = jobs.enqueue("test-fragile", n=5, size=2).id
    with pytest.raises(Killed):
        db.session.commit()  # the eager runner plans at once, and the "worker" dies
    db.session.remove()  # (this session died with it)
    job = fetch(job_id)
    assert job.status is JobStatus.QUEUED, "never running without chunks"
    assert chunks_of(job_id) == []
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert jobs.reap(app, later).jobs_resent == [job_id]
    job = fetch(job_id)
    assert job.status is JobStatus.SUCCEEDED, job.message
    assert sorted(done_items) == list(range(5)) and finished_jobs.count(job_id) == 1


def test_the_reaper_completes_a_job_whose_last_chunk_finished_without_completing_it(
    app: Flask, app_ctx: Flask, monkeypatch
) -> None:
    real = jobs._complete_if_done
    calls: list[int] = []

    def dies_the_first_time(job_id: int) -> bool:
        calls.append(job_id)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return real(job_id)

    monkeypatch.setattr(jobs, "_complete_if_done", dies_the_first_time)
    job_id = jobs.enqueue("test-fragile", n=4, size=4).id
    db.session.commit()
    job = fetch(job_id)
    assert job.status is JobStatus.RUNNING
    assert [c.status for c in chunks_of(job_id)] == [ChunkStatus.DONE]
    assert jobs.reap(app).jobs_completed == [], "not yet: the last chunk has only just finished"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert jobs.reap(app, later).jobs_completed == [job_id]
    job = fetch(job_id)
    assert job.status is JobStatus.SUCCEEDED and job.result == {"items": 4}
    assert finished_jobs.count(job_id) == 1, "the kind's finish ran once"
    assert jobs.reap(app, later).jobs_completed == []


def test_a_chunk_that_stops_its_worker_on_every_attempt_fails_its_job(
    app: Flask, app_ctx: Flask, monkeypatch
) -> None:
    monkeypatch.setattr(jobs.EagerRunner, "submit_chunks", lambda self, app, ids: None)
    job_id = jobs.enqueue("test-numbers", n=3, size=3).id
    db.session.commit()
    (chunk,) = chunks_of(job_id)
    now = dt.datetime.now(dt.UTC)
    for attempt in (1, 2, 3):  # each worker claims it and is killed (out of memory, say)
        assert jobs.claim_chunk(chunk.id, f"worker-{attempt}") is not None
        reaped = jobs.reap(app, now + dt.timedelta(minutes=5 * attempt))
        if attempt < 3:
            assert reaped.chunks_requeued == [chunk.id] and reaped.chunks_failed == []
    assert reaped.chunks_requeued == [] and reaped.chunks_failed == [chunk.id]
    (chunk,) = chunks_of(job_id)
    assert (chunk.status, chunk.attempts) == (ChunkStatus.FAILED, 3)
    job = fetch(job_id)
    assert job.status is JobStatus.FAILED
    assert "3" in (job.message or "") and job.message == chunk.message
    assert jobs.claim_chunk(chunk.id, "worker-4") is None, "not handed out again"


def test_a_savepoint_rolled_back_keeps_the_jobs_enqueued_before_it(app_ctx: Flask) -> None:
    job_id = jobs.enqueue("test-numbers", n=2, size=2).id
    nested = db.session.begin_nested()
    nested.rollback()
    db.session.commit()
    assert fetch(job_id).status is JobStatus.SUCCEEDED
    # a transaction rolled back as a whole sends nothing
    gone = jobs.enqueue("test-numbers", n=2, size=2).id
    db.session.rollback()
    db.session.commit()
    assert db.session.get(Job, gone) is None and sorted(done_items) == [0, 1]


def test_a_job_whose_closing_step_fails_again_fails_instead_of_running_forever(
    app: Flask, app_ctx: Flask
) -> None:
    failing_finish.append(True)
    job_id = jobs.enqueue("test-fragile", n=2, size=2).id
    db.session.commit()  # the chunk is done; completing the job fails (first try)
    assert fetch(job_id).status is JobStatus.RUNNING
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert jobs.reap(app, later).jobs_completed == []  # the second try fails too
    job = fetch(job_id)
    assert job.status is JobStatus.FAILED and job.message == "RuntimeError: the closing step failed"


def test_a_job_with_nothing_to_do_is_claimed_and_completed_at_once(app_ctx: Flask) -> None:
    job_id = jobs.enqueue("test-fragile", n=0, size=2).id
    db.session.commit()
    job = fetch(job_id)
    assert job.status is JobStatus.SUCCEEDED and chunks_of(job_id) == []
    assert finished_jobs == [job_id]
    failing_finish.append(True)
    failed = jobs.enqueue("test-fragile", n=0, size=2).id
    db.session.commit()
    assert fetch(failed).status is JobStatus.FAILED, "not left running with nothing to reap"
