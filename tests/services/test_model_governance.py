"""Model governance: approve/retire, champion/challenger on one hold-out, PSI drift, the
rescoring job."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from flask import Flask

from app.services import model_monitoring, model_registry, profiles
from app.services.accounts import PermissionRefused
from app.services.model_registry import RegistryError
from ml.validation import calibration_table, metrics
from models import CreditProfile, Enterprise, Job, JobStatus, ModelStatus, OrgKind, Role, User, db
from tests.conftest import Factory
from tests.support.governance import (
    TrainedPair,
    trained_pair_fixture,  # noqa: F401  (fixture)
)


def _user(factory: Factory, kind: OrgKind, role: Role) -> User:
    account = factory.user(kind, role)
    user = db.session.get(User, account.user_id)
    assert user is not None
    return user


def _enterprises(factory: Factory, n: int) -> list[int]:
    for _ in range(n):
        factory.enterprise()
    return list(db.session.scalars(sa.select(Enterprise.id).order_by(Enterprise.id)))


# Approve / retire ----------------------------------------------------------------------------
def test_only_office_admins_approve_and_retire(
    app_ctx: Flask, factory: Factory, trained_pair: TrainedPair
) -> None:
    version = model_registry.register(trained_pair.scorecard_dir, None)
    db.session.commit()
    for kind, role in [
        (OrgKind.OFFICE, Role.OFFICER),
        (OrgKind.OFFICE, Role.VIEWER),
        (OrgKind.BANK, Role.ADMIN),
    ]:
        actor = _user(factory, kind, role)
        with pytest.raises(PermissionRefused):
            model_registry.approve(version, actor, recompute=False)
        with pytest.raises(PermissionRefused):
            model_registry.retire(version, actor)
        with pytest.raises(PermissionRefused):
            model_monitoring.start_rescore(actor)
    assert version.status is ModelStatus.CANDIDATE
    admin = _user(factory, OrgKind.OFFICE, Role.ADMIN)
    model_registry.approve(version, admin, recompute=False)
    assert version.status is ModelStatus.APPROVED and version.approved_by_id == admin.id


def test_only_the_approved_version_scores_and_retiring_it_stops_grading(
    app_ctx: Flask, factory: Factory, trained_pair: TrainedPair
) -> None:
    (eid,) = _enterprises(factory, 1)
    enterprise = db.session.get(Enterprise, eid)
    assert enterprise is not None
    admin = _user(factory, OrgKind.OFFICE, Role.ADMIN)
    card = model_registry.register(trained_pair.scorecard_dir, None)
    gbm = model_registry.register(trained_pair.gbm_dir, None)
    # nothing approved: no grade, even though two candidates are registered
    assert profiles.compute_profile(enterprise).grade is None
    model_registry.approve(card, admin, recompute=False)
    scored = profiles.compute_profile(enterprise)
    assert scored.model_version_id == card.id and scored.grade is not None
    assert gbm.status is ModelStatus.CANDIDATE
    model_registry.retire(card, admin)
    db.session.commit()
    assert card.status is ModelStatus.RETIRED and card.retired_by_id == admin.id
    assert model_registry.serving_version() is None
    assert profiles.compute_profile(enterprise).grade is None
    with pytest.raises(RegistryError):
        model_registry.approve(card, admin, recompute=False)  # retired for good
    model_registry.approve(gbm, admin, recompute=False)
    assert profiles.compute_profile(enterprise).model_version_id == gbm.id


# Champion / challenger -----------------------------------------------------------------------
def test_champion_and_challenger_figures_equal_the_ml_metrics_on_the_same_holdout(
    app_ctx: Flask, trained_pair: TrainedPair
) -> None:
    card = model_registry.register(trained_pair.scorecard_dir, None)
    gbm = model_registry.register(trained_pair.gbm_dir, None)
    model_registry.approve(card, None, recompute=False)
    holdout = model_monitoring.save_holdout(
        trained_pair.X_holdout, trained_pair.y_holdout, name="test hold-out", source="test"
    )
    assert holdout.n == len(trained_pair.y_holdout)
    assert holdout.n_events == int(trained_pair.y_holdout.sum())

    comparison = model_monitoring.compare(card, gbm, holdout.key)

    X, y = trained_pair.X_holdout, trained_pair.y_holdout
    for figures, directory in [
        (comparison.champion, trained_pair.scorecard_dir),
        (comparison.challenger, trained_pair.gbm_dir),
    ]:
        version = figures.version
        model = model_registry.load_version(version)
        pd_ = model.predict(X)["pd"].to_numpy()
        expected = metrics(y, pd_)
        for name in ("auc", "ks", "gini", "brier", "ece"):
            assert figures.metrics[name] == pytest.approx(expected[name], abs=1e-12), name
        assert figures.calibration == calibration_table(y, pd_)
        # and it is the very hold-out the training run reported on
        assert figures.metrics["auc"] == pytest.approx(
            version.validation_report["test"]["auc"], abs=1e-12
        )
        assert figures.metrics["n"] == version.validation_report["test"]["n"]
        assert directory.is_dir()
    assert comparison.champion.metrics["auc"] != comparison.challenger.metrics["auc"]
    assert [row[0] for row in comparison.rows] == ["auc", "ks", "gini", "brier", "ece"]


def test_an_altered_holdout_file_is_refused(app_ctx: Flask, trained_pair: TrainedPair) -> None:
    X = trained_pair.X_holdout.iloc[:50]
    y = trained_pair.y_holdout[:50]
    holdout = model_monitoring.save_holdout(X, y, name="small", source="test-altered")
    assert holdout.key in {h.key for h in model_monitoring.holdouts()}
    path = model_registry.model_root() / "holdouts" / holdout.key / "holdout.csv"
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n")  # one byte more
        with pytest.raises(RegistryError, match="altered"):
            model_monitoring.load_holdout(holdout.key)
    finally:
        path.write_bytes(original)
    _, X_back, y_back = model_monitoring.load_holdout(holdout.key)
    assert (y_back == y).all()
    pd.testing.assert_frame_equal(X_back, X.reset_index(drop=True), check_exact=True)


# Drift ---------------------------------------------------------------------------------------
def test_psi_is_hand_checkable_and_flagged_above_a_quarter() -> None:
    reference = {
        "n": 100,
        "features": {
            # edges [0.5]: shares of (< 0.5, >= 0.5, missing)
            "moved": {"kind": "numeric", "edges": [0.5], "shares": [0.5, 0.5, 0.0]},
            "steady": {"kind": "numeric", "edges": [0.5], "shares": [0.5, 0.5, 0.0]},
        },
        "score": {"kind": "numeric", "edges": [600.0], "shares": [0.5, 0.5, 0.0]},
    }
    live = pd.DataFrame(
        {"moved": [0.2] * 10, "steady": [0.1] * 6 + [0.9] * 4}  # moved: all below 0.5
    )
    score = np.array([550.0] * 5 + [650.0] * 5)
    score_psi, rows = model_monitoring.drift_against(reference, live, score)
    by_name = {r.name: r for r in rows}
    floor = 1e-4
    moved = (1 - 0.5) * math.log(1 / 0.5) + (floor - 0.5) * math.log(floor / 0.5)
    steady = (0.6 - 0.5) * math.log(0.6 / 0.5) + (0.4 - 0.5) * math.log(0.4 / 0.5)
    assert by_name["moved"].psi == pytest.approx(moved, rel=1e-12)  # ≈ 4.605
    assert by_name["steady"].psi == pytest.approx(steady, rel=1e-12)  # ≈ 0.0405
    assert by_name["moved"].shifted and not by_name["steady"].shifted
    assert score_psi == pytest.approx(0.0, abs=1e-12)
    assert [r.name for r in rows] == ["moved", "steady"]  # largest first


def test_population_drift_of_the_live_profiles(
    app_ctx: Flask, factory: Factory, trained_pair: TrainedPair
) -> None:
    ids = _enterprises(factory, 4)
    card = model_registry.register(trained_pair.scorecard_dir, None)
    model_registry.approve(card, None, recompute=False)
    profiles.compute_all(ids)
    db.session.commit()
    report = model_monitoring.population_drift()
    assert report.version is not None and report.version.id == card.id
    assert report.n_live == 4 and report.n_train == card.training_summary["n_train"]
    assert len(report.features) == len(card.features)
    # These enterprises have no records at all: every feature is missing, far from training.
    model = model_registry.load_version(card)
    X = model_monitoring.live_features()
    expected_score, expected = model_monitoring.drift_against(
        model.reference, X, model.predict(X)["score"].to_numpy()
    )
    assert report.score_psi == pytest.approx(expected_score)
    assert [(f.name, f.psi) for f in report.features] == [(f.name, f.psi) for f in expected]
    assert report.shifted and all(f.psi is not None and f.psi > 0.25 for f in report.shifted)


def test_drift_without_an_approved_model_is_empty(app_ctx: Flask) -> None:
    report = model_monitoring.population_drift()
    assert report.version is None and report.n_live == 0 and report.features == []


# Rescoring -----------------------------------------------------------------------------------
def test_rescoring_job_recomputes_each_enterprise_once_with_progress(
    app: Flask, app_ctx: Flask, factory: Factory, trained_pair: TrainedPair, monkeypatch
) -> None:
    ids = _enterprises(factory, 5)
    admin = _user(factory, OrgKind.OFFICE, Role.ADMIN)
    card = model_registry.register(trained_pair.scorecard_dir, None)
    model_registry.approve(card, None, recompute=False)
    db.session.commit()
    monkeypatch.setitem(app.config, "RESCORE_CHUNK", 2)
    seen: list[tuple[int, list[int]]] = []
    real = profiles.compute_all

    def watching(enterprise_ids, **kwargs):  # type: ignore[no-untyped-def]
        done = db.session.scalar(sa.select(Job.steps_done).where(Job.kind == "models.rescore"))
        seen.append((int(done or 0), list(enterprise_ids)))
        return real(enterprise_ids, **kwargs)

    monkeypatch.setattr(model_monitoring.profiles, "compute_all", watching)
    job = model_monitoring.start_rescore(admin)
    job_id = job.id
    assert job.steps_total == 5
    db.session.commit()  # the job runs after the commit (eagerly in tests)
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED, job.message
    assert (job.steps_done, job.steps_total) == (5, 5)
    assert job.result["profiles"] == 5
    # progress committed after each chunk: 0, 2, 4 enterprises done before chunks 1, 2, 3
    assert [done for done, _ in seen] == [0, 2, 4]
    assert sorted(i for _, part in seen for i in part) == ids
    rows = db.session.execute(
        sa.select(CreditProfile.enterprise_id, sa.func.count())
        .where(CreditProfile.trigger == "rescore")
        .group_by(CreditProfile.enterprise_id)
    ).all()
    assert dict(rows) == dict.fromkeys(ids, 1)
    versions = set(
        db.session.scalars(
            sa.select(CreditProfile.model_version_id).where(CreditProfile.trigger == "rescore")
        )
    )
    assert versions == {card.id}


def test_rescoring_needs_an_approved_version(app_ctx: Flask) -> None:
    with pytest.raises(RegistryError):
        model_monitoring.start_rescore(None)


def test_approve_and_rescore_queues_one_job(
    app_ctx: Flask, factory: Factory, trained_pair: TrainedPair
) -> None:
    _enterprises(factory, 2)
    card = model_registry.register(trained_pair.scorecard_dir, None)
    job = model_monitoring.approve_and_rescore(card, None)
    assert job is not None and job.params["model_version_id"] == card.id
    assert model_monitoring.approve_and_rescore(card, None) is job  # already running


def test_seed_demo_governance_adds_a_challenger_and_its_holdout_once(app_ctx: Flask) -> None:
    first = model_monitoring.seed_demo_governance(800, seed=3)
    again = model_monitoring.seed_demo_governance(800, seed=3)
    assert again == first and first.n == 240  # 30 % of 800
    gbms = [v for v in model_registry.versions() if v.kind.value == "gbm"]
    assert len(gbms) == 1 and gbms[0].status is ModelStatus.CANDIDATE
    assert gbms[0].validation_report["test"]["n"] == first.n


def test_drift_compares_a_sample_of_a_large_population(
    app_ctx: Flask, factory: Factory, trained_pair: TrainedPair, monkeypatch
) -> None:
    """Past DRIFT_SAMPLE enterprises, every k-th by id is compared (the same ones each time),
    and the report says how many there are in all."""
    ids = _enterprises(factory, 9)
    card = model_registry.register(trained_pair.scorecard_dir, None)
    model_registry.approve(card, None, recompute=False)
    profiles.compute_all(ids)
    db.session.commit()
    monkeypatch.setattr(model_monitoring, "DRIFT_SAMPLE", 3)
    report = model_monitoring.population_drift()
    assert (report.n_live, report.population, report.sampled) == (3, 9, True)
    sample = model_monitoring.live_features(3)
    assert list(sample.index) == sorted(ids)[::3]
    again = model_monitoring.population_drift()
    assert again.score_psi == report.score_psi
    monkeypatch.setattr(model_monitoring, "DRIFT_SAMPLE", 9)  # as many as there are
    whole = model_monitoring.population_drift()
    assert (whole.n_live, whole.population, whole.sampled) == (9, 9, False)
