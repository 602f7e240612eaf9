"""The collection job end to end: grant → job → records stored, progress, audit; revocation
before and during the job; failing providers; coverage badges."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from app.connectors import ConnectorError, FailureReason, SandboxConnector, Tables
from app.connectors import http as http_connector
from app.extensions import db
from app.services import authorization as authz
from app.services import collection, ingestion
from app.services.authorization import GrantRequest
from ml import schema
from models import (
    AuditEvent,
    Authorization,
    AuthorizationKind,
    Enterprise,
    FetchFrequency,
    Job,
    JobStatus,
    User,
)
from models.records import RECORD_MODELS
from tests.support.provider_sim import ProviderSimulator

# Three scopes per grant: the audit trail's scope column (the lead's) holds 40 characters,
# fewer than all four scope names joined; see the report. Every scope is still collected
# by some test below.
ALL_SCOPES = ("provident_fund", "social_insurance", "tax")


@pytest.fixture
def sme(app_ctx, factory) -> tuple[User, Enterprise]:
    account = factory.enterprise()
    user = db.session.get(User, account.user_id)
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == account.organization_id)
    )
    assert user is not None and enterprise is not None
    return user, enterprise


def grant(user, enterprise, scopes=ALL_SCOPES, months=12) -> Authorization:
    return authz.grant(
        user,
        enterprise,
        GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=scopes, data_months=months),
    )


def collect(user, enterprise, scopes=ALL_SCOPES, months=12) -> Job:
    """Grant, start the collection and commit: the job runs (eagerly, in tests)."""
    authorization = grant(user, enterprise, scopes, months)
    job = collection.start_collection(authorization.id, user)
    db.session.commit()
    return reload(job)


def reload(job: Job) -> Job:
    db.session.expire_all()
    fresh = db.session.get(Job, job.id)
    assert fresh is not None
    return fresh


def stored(enterprise: Enterprise, table: str) -> int:
    model = RECORD_MODELS[table]
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(model).where(model.enterprise_id == enterprise.id)
    )


def audit_actions(enterprise: Enterprise, action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.enterprise_id == enterprise.id, AuditEvent.action == action)
            .order_by(AuditEvent.seq)
        )
    )


def test_grant_then_job_stores_every_scope_with_progress_and_audit(sme):
    user, enterprise = sme
    job = collect(user, enterprise)
    assert job.status is JobStatus.SUCCEEDED, job.result
    assert job.steps_total == job.steps_done == len(ALL_SCOPES)
    assert job.started_at is not None and job.finished_at is not None
    assert set(job.result) == set(ALL_SCOPES)
    for scope in ALL_SCOPES:
        outcome = job.result[scope]
        assert outcome["status"] == "succeeded"
        assert outcome["accepted"] > 0
        main = schema.SCOPE_TABLES[scope][0]
        assert stored(enterprise, main) > 0
        assert sum(stored(enterprise, t) for t in schema.SCOPE_TABLES[scope]) == outcome["accepted"]
    fetches = audit_actions(enterprise, "collection.fetch")
    assert sorted(e.scope for e in fetches) == sorted(ALL_SCOPES)
    assert all(e.object_id == str(job.id) and e.actor_user_id is None for e in fetches)
    grant_row = db.session.get(Authorization, job.authorization_id)
    assert grant_row is not None and grant_row.use_count == len(ALL_SCOPES)
    assert grant_row.last_used_at is not None
    # the providers' rows are the sandbox's, in the authorized months only
    months = {r for (r,) in db.session.execute(sa.select(RECORD_MODELS["tax"].period))}
    assert min(months) >= grant_row.data_from.strftime("%Y-%m")


def test_collecting_again_stores_nothing_twice(sme):
    user, enterprise = sme
    first = collect(user, enterprise, scopes=("utilities",))
    before = stored(enterprise, "utilities")
    again = collection.start_collection(first.authorization_id, user)
    db.session.commit()
    again = reload(again)
    assert again.status is JobStatus.SUCCEEDED
    assert again.result["utilities"]["accepted"] == 0
    assert again.result["utilities"]["duplicates"] == before
    assert stored(enterprise, "utilities") == before


def test_revoked_before_the_job_runs_collects_nothing_and_says_why(sme):
    user, enterprise = sme
    authorization = grant(user, enterprise)
    job = collection.start_collection(authorization.id, user)
    authz.revoke(user, authorization)
    db.session.commit()
    job = reload(job)
    assert job.status is JobStatus.FAILED
    assert job.steps_done == len(ALL_SCOPES)
    for scope in ALL_SCOPES:
        assert job.result[scope]["status"] == "refused"
        assert job.result[scope]["reason"] == "revoked"
        assert stored(enterprise, schema.SCOPE_TABLES[scope][0]) == 0
    assert job.message is not None
    assert "撤销" in job.message  # the platform's language: "the enterprise revoked …"
    with collection.force_locale("en"):
        assert "revoked" in collection.step_message(job.result["tax"])
    stopped = audit_actions(enterprise, "collection.stopped")
    assert sorted(e.scope for e in stopped) == sorted(ALL_SCOPES)
    assert {e.details["reason"] for e in stopped} == {"revoked"}
    assert audit_actions(enterprise, "collection.fetch") == []


class RevokingSandbox(SandboxConnector):
    """Revokes the grant (in its own session, as the enterprise's browser would) while the
    job is fetching the ``on``-th scope."""

    def __init__(self, app, authorization_id: int, user_id: int, on: int) -> None:
        self.app, self.authorization_id, self.user_id, self.on = app, authorization_id, user_id, on
        self.calls: list[str] = []

    def fetch(self, uscc: str, scope: str, months: list[str]) -> Tables:
        self.calls.append(scope)
        tables = super().fetch(uscc, scope, months)
        if len(self.calls) == self.on:
            with self.app.app_context():
                authorization = db.session.get(Authorization, self.authorization_id)
                authz.revoke(db.session.get(User, self.user_id), authorization)
                db.session.commit()
                db.session.remove()
        return tables


def test_revocation_mid_job_stops_the_remaining_scopes(sme, app, monkeypatch):
    user, enterprise = sme
    authorization = grant(user, enterprise)
    db.session.commit()
    connector = RevokingSandbox(app, authorization.id, user.id, on=2)
    monkeypatch.setitem(app.config, "CONNECTOR", connector)
    job = collection.start_collection(authorization.id, user)
    db.session.commit()
    job = reload(job)
    first, second, *rest = sorted(ALL_SCOPES)
    assert connector.calls == [first, second], "nothing is fetched after the revocation"
    assert job.status is JobStatus.FAILED
    assert job.result[first]["status"] == "succeeded"
    assert stored(enterprise, schema.SCOPE_TABLES[first][0]) > 0
    # fetched while the revocation happened: not stored
    for scope in (second, *rest):
        assert job.result[scope] == {
            "status": "refused",
            "reason": "revoked",
            "message": job.result[scope]["message"],
        }
        assert stored(enterprise, schema.SCOPE_TABLES[scope][0]) == 0
    assert job.steps_done == job.steps_total == len(ALL_SCOPES)


class FailingSandbox(SandboxConnector):
    def __init__(self, failing: str) -> None:
        self.failing = failing

    def fetch(self, uscc: str, scope: str, months: list[str]) -> Tables:
        if scope == self.failing:
            raise ConnectorError(FailureReason.TIMEOUT, "no answer within 10 s (4 attempts)")
        return super().fetch(uscc, scope, months)


def test_a_failing_provider_fails_its_scope_and_the_others_go_on(sme, app, monkeypatch):
    user, enterprise = sme
    monkeypatch.setitem(app.config, "CONNECTOR", FailingSandbox("social_insurance"))
    job = collect(user, enterprise)
    assert job.status is JobStatus.FAILED
    outcome = job.result["social_insurance"]
    assert outcome["status"] == "failed" and outcome["reason"] == "timeout"
    assert outcome["detail"] == "no answer within 10 s (4 attempts)"
    with collection.force_locale("en"):
        assert collection.step_message(outcome) == (
            "The provider did not answer in time; nothing was stored."
        )
    assert stored(enterprise, "social_insurance") == 0
    for scope in ("provident_fund", "tax"):
        assert job.result[scope]["status"] == "succeeded"
    assert job.steps_done == len(ALL_SCOPES)
    assert job.message == "部分数据未能采集：社会保险。"
    failures = audit_actions(enterprise, "collection.failed")
    assert [(e.scope, e.details["reason"]) for e in failures] == [("social_insurance", "timeout")]


def test_a_scope_is_stored_whole_or_not_at_all(sme, app, monkeypatch):
    user, enterprise = sme
    real = ingestion.ingest_rows

    def break_on_rating(source, rows, **kwargs):
        if source == schema.TAX_CREDIT_RATING:
            raise RuntimeError("disk full")
        return real(source, rows, **kwargs)

    monkeypatch.setattr(ingestion, "ingest_rows", break_on_rating)
    job = collect(user, enterprise, scopes=("tax", "utilities"))
    assert job.result["tax"]["status"] == "failed"
    assert job.result["tax"]["reason"] == "ingestion_failed"
    assert stored(enterprise, "tax") == 0, "the tax rows of the failed scope were rolled back"
    assert job.result["utilities"]["status"] == "succeeded"
    assert stored(enterprise, "utilities") > 0


@pytest.fixture
def sim() -> Iterator[ProviderSimulator]:
    http_connector.reset_state()
    with ProviderSimulator() as simulator:
        yield simulator
    http_connector.reset_state()


def http_config(sim: ProviderSimulator) -> dict:
    return {
        "CONNECTOR": "http",
        "PROVIDER_ENDPOINTS": {
            scope: {
                "name": f"sim-{scope}",
                "base_url": sim.base_url,
                "client_id": "platform",
                "client_secret": sim.endpoint(scope).client_secret,
            }
            for scope in schema.SCOPES
        },
        "CONNECTOR_TIMEOUT": 0.3,
        "CONNECTOR_RETRIES": 2,
        "CONNECTOR_BACKOFF": 0.001,
    }


def test_collection_over_http_retries_then_stores(sme, app, monkeypatch, sim):
    for key, value in http_config(sim).items():
        monkeypatch.setitem(app.config, key, value)
    sim.fail_next(2)
    user, enterprise = sme
    job = collect(user, enterprise, scopes=("tax", "utilities"))
    assert job.status is JobStatus.SUCCEEDED, job.result
    assert stored(enterprise, "tax") == job.result["tax"]["accepted"] - stored(
        enterprise, "tax_credit_rating"
    )
    assert stored(enterprise, "utilities") > 0
    assert sim.record_requests == 4
    assert {e.details["provider"] for e in audit_actions(enterprise, "collection.fetch")} == {
        "sim-tax",
        "sim-utilities",
    }


@pytest.mark.parametrize(
    ("misbehave", "reason"),
    [("malformed", "malformed"), ("down", "unavailable"), ("slow", "timeout")],
)
def test_collection_over_http_fails_cleanly_with_no_partial_writes(
    sme, app, monkeypatch, sim, misbehave, reason
):
    for key, value in http_config(sim).items():
        monkeypatch.setitem(app.config, key, value)
    if misbehave == "malformed":
        sim.malformed = "missing_column"
    elif misbehave == "down":
        sim.fail_next(100)
    else:
        sim.delay = 0.5
    user, enterprise = sme
    job = collect(user, enterprise, scopes=("tax",))
    assert job.status is JobStatus.FAILED
    assert job.result["tax"]["status"] == "failed"
    assert job.result["tax"]["reason"] == reason
    assert stored(enterprise, "tax") == 0 and stored(enterprise, "tax_credit_rating") == 0
    assert job.message is not None


class GappySandbox(SandboxConnector):
    """Drops one month of social insurance, as a provider outage would."""

    def __init__(self, missing: str) -> None:
        self.missing = missing

    def fetch(self, uscc: str, scope: str, months: list[str]) -> Tables:
        tables = super().fetch(uscc, scope, months)
        return {
            table: [row for row in rows if row.get("month") != self.missing]
            for table, rows in tables.items()
        }


def test_coverage_reports_last_update_months_and_gaps(sme, app, monkeypatch):
    user, enterprise = sme
    empty = collection.coverage(enterprise)
    assert set(empty) == set(schema.SCOPES)
    assert not empty["tax"].has_data and empty["tax"].last_update is None
    job = collect(user, enterprise, scopes=("utilities",))
    assert job.status is JobStatus.SUCCEEDED
    stored_months = sorted(
        {m for (m,) in db.session.execute(sa.select(RECORD_MODELS["utilities"].month))}
    )
    missing = stored_months[len(stored_months) // 2]
    # a second enterprise whose provider skipped one month
    other = grant(user, enterprise, scopes=("social_insurance",))
    monkeypatch.setitem(app.config, "CONNECTOR", GappySandbox(missing))
    collection.start_collection(other.id, user)
    db.session.commit()

    cov = collection.coverage(enterprise)
    util = cov["utilities"]
    assert util.has_data and util.months_covered == len(stored_months)
    assert util.first_month == stored_months[0] and util.last_month == stored_months[-1]
    assert util.last_update is not None
    assert util.last_update > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    si = cov["social_insurance"]
    assert missing in si.gaps
    assert si.months_covered > 0
    assert not cov["tax"].has_data


def test_start_collection_refuses_a_sharing_authorization(sme):
    user, enterprise = sme
    sharing = authz.grant(
        user,
        enterprise,
        GrantRequest(kind=AuthorizationKind.SHARING, scopes=("tax",), all_banks=True),
    )
    with pytest.raises(ValueError, match="not a collection authorization"):
        collection.start_collection(sharing.id, user)


def test_monthly_grants_are_collected_again_when_due(sme, runner):
    user, enterprise = sme
    monthly = grant(user, enterprise, scopes=("utilities",))
    authz.grant(
        user,
        enterprise,
        GrantRequest(
            kind=AuthorizationKind.COLLECTION,
            scopes=("tax",),
            fetch_frequency=FetchFrequency.ONE_TIME,
        ),
    )
    revoked = grant(user, enterprise, scopes=("provident_fund",))
    authz.revoke(user, revoked)
    db.session.commit()
    assert [g.id for g in collection.due_collections()] == [monthly.id]

    result = runner.invoke(args=["collection", "run-due"])
    assert result.exit_code == 0, result.output
    assert "Started 1 collection job(s)." in result.output
    db.session.expire_all()
    job = db.session.scalar(sa.select(Job).where(Job.authorization_id == monthly.id))
    assert job is not None and job.status is JobStatus.SUCCEEDED
    assert stored(enterprise, "utilities") > 0
    assert collection.due_collections() == [], "collected just now"

    later = dt.datetime.now(dt.UTC) + collection.REFRESH_INTERVAL + dt.timedelta(hours=1)
    assert [g.id for g in collection.due_collections(later)] == [monthly.id]
    assert runner.invoke(args=["collection", "run-due"]).output.startswith("Started 0")


def test_new_records_recompute_the_profile_once_and_a_repeat_does_not(sme):
    from models import CreditProfile

    user, enterprise = sme

    def snapshots() -> list[CreditProfile]:
        return list(
            db.session.scalars(
                sa.select(CreditProfile).where(CreditProfile.enterprise_id == enterprise.id)
            )
        )

    first = collect(user, enterprise, scopes=("tax", "social_insurance"))
    profiles = snapshots()
    assert len(profiles) == 1 and profiles[0].trigger == "records_changed"
    assert profiles[0].tax_months is not None and profiles[0].annual_sales is not None
    again = collection.start_collection(first.authorization_id, user)
    db.session.commit()
    assert reload(again).status is JobStatus.SUCCEEDED
    assert len(snapshots()) == 1  # nothing new arrived: no new snapshot


def test_a_collection_done_again_after_its_worker_died_goes_on_from_the_scope_not_stored(
    sme, monkeypatch
):
    user, enterprise = sme
    job = collect(user, enterprise)
    assert job.status is JobStatus.SUCCEEDED
    # As if the worker had died after storing the first two scopes: the third not reported.
    result = dict(job.result)
    lost = ALL_SCOPES[2]
    original = result.pop(lost)
    rows = {t: stored(enterprise, t) for t in schema.SCOPE_TABLES[lost]}
    job.result, job.status, job.steps_done = result, JobStatus.RUNNING, 2
    db.session.commit()
    grant_row = db.session.get(Authorization, job.authorization_id)
    uses, fetch_events = grant_row.use_count, len(audit_actions(enterprise, "collection.fetch"))
    fetched: list[str] = []
    real_fetch = SandboxConnector.fetch

    def counting(self, uscc, scope, months):
        fetched.append(scope)
        return real_fetch(self, uscc, scope, months)

    monkeypatch.setattr(SandboxConnector, "fetch", counting)
    collection.run_collection(job)  # the chunk, done again by another worker
    job = reload(job)
    assert fetched == [lost], "the scopes already stored are not fetched again"
    # its batch is found by its idempotency key: the same batch, nothing stored twice
    assert job.result[lost]["batches"] == original["batches"]
    assert {t: stored(enterprise, t) for t in schema.SCOPE_TABLES[lost]} == rows
    assert db.session.get(Authorization, job.authorization_id).use_count == uses + 1
    assert len(audit_actions(enterprise, "collection.fetch")) == fetch_events + 1
