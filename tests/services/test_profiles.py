"""Credit profiles and model versions: snapshots, history, registry rules."""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from app.services import model_registry, profiles
from app.services.accounts import PermissionRefused
from ml.artifacts import load_model
from ml.features import build_features
from models import CreditProfile, ModelStatus, ModelVersion, OrgKind, Role, User, db
from tests.conftest import Factory
from tests.services.test_profiles_support import (
    AS_OF,
    NOW,
    add_records,
    approved_version_id_fixture,  # noqa: F401  (fixture)
    enterprise_by_user,
    foreign_model_dir_fixture,  # noqa: F401  (fixture)
    grant_collection,
    tables_from,
    trained_model_dir_fixture,  # noqa: F401  (fixture)
)


def test_profile_equals_the_models_own_decision(
    app_ctx: Flask, factory: Factory, approved_version_id: int, trained_model_dir: Path
) -> None:
    account = factory.enterprise()
    enterprise = enterprise_by_user(account.user_id)
    grant_collection(account.user_id, ("social_insurance", "tax", "utilities"))
    made = add_records(enterprise, arrears_months=3)

    profile = profiles.compute_profile(enterprise, now=NOW)
    db.session.commit()

    tables = tables_from(enterprise, made, "tax;social_insurance;utilities")
    row = build_features(tables, AS_OF).iloc[0]
    model = load_model(trained_model_dir / "model", trusted_base=trained_model_dir)
    decision = model.decide({k: v for k, v in row.items() if not math.isnan(v)})

    assert profile.model_version_id == approved_version_id
    assert profile.grade == decision.grade
    assert float(profile.pd or 0) == pytest.approx(decision.pd, abs=1e-9)
    assert float(profile.score or 0) == pytest.approx(decision.score, abs=0.006)
    assert profile.grade_rank == model.grades.grades.index(decision.grade)
    for name, value in row.items():
        stored = profile.features[name]
        assert (stored is None and math.isnan(value)) or stored == pytest.approx(value)
    assert profile.features["pf_continuity_months"] is None  # provident fund not authorized
    assert [r["feature"] for r in profile.reasons] == [r.feature for r in decision.reasons]
    assert profile.counterfactual == (
        decision.counterfactual.to_dict() if decision.counterfactual else None
    )
    # matching facts: the last 12 VAT months of sales; arrears in the last 3 SI months
    assert profile.annual_sales == sum(100_000 + 1000 * i for i in range(6, 18))
    assert profile.tax_months == 18
    assert profile.social_months == 0
    assert profile.public_credit_class == "B"
    coverage = {c["scope"]: c for c in profile.coverage}
    assert coverage["tax"]["months_covered"] == 18
    assert coverage["provident_fund"]["authorized"] is False


def test_without_an_approved_model_the_profile_has_no_grade(
    app_ctx: Flask, factory: Factory
) -> None:
    account = factory.enterprise()
    enterprise = enterprise_by_user(account.user_id)
    grant_collection(account.user_id, ("tax",))
    add_records(enterprise)

    profile = profiles.compute_profile(enterprise, now=NOW)
    db.session.commit()

    assert profile.model_version_id is None
    assert profile.grade is None and profile.pd is None and profile.score is None
    assert profile.reasons == []
    assert profile.public_credit_class == "B"
    assert profile.social_months is None  # social insurance not authorized
    assert profile.tax_months == 18


def test_a_new_computation_adds_a_snapshot_and_keeps_the_old_one(
    app_ctx: Flask, factory: Factory, approved_version_id: int
) -> None:
    account = factory.enterprise()
    enterprise = enterprise_by_user(account.user_id)
    grant_collection(account.user_id, ("social_insurance", "tax", "utilities"))
    add_records(enterprise)
    first = profiles.compute_profile(enterprise, now=NOW)
    db.session.commit()
    before = (first.id, first.grade, first.pd, first.content_hash, first.computed_at)

    add_records(enterprise, arrears_months=6, version=3)  # corrections: newer versions
    second = profiles.compute_profile(enterprise, now=NOW + dt.timedelta(days=1))
    db.session.commit()
    db.session.expire_all()

    history = profiles.history(enterprise)
    assert [p.id for p in history] == [second.id, first.id]
    old = db.session.get(CreditProfile, first.id)
    assert old is not None
    assert (old.id, old.grade, old.pd, old.content_hash, old.computed_at) == before
    assert profiles.latest_profiles([enterprise.id])[enterprise.id].id == second.id


def test_batch_matches_single_profiles(
    app_ctx: Flask, factory: Factory, approved_version_id: int
) -> None:
    enterprises = []
    for arrears in (0, 4):
        account = factory.enterprise()
        enterprise = enterprise_by_user(account.user_id)
        grant_collection(account.user_id, ("social_insurance", "tax", "utilities"))
        add_records(enterprise, arrears_months=arrears)
        db.session.commit()
        enterprises.append(enterprise)
    singles = [profiles.compute_profile(e, now=NOW) for e in enterprises]
    db.session.commit()

    added = profiles.compute_all([e.id for e in enterprises], now=NOW, chunk=1)
    db.session.commit()

    latest = profiles.latest_profiles([e.id for e in enterprises])
    assert added == 2
    for single, enterprise in zip(singles, enterprises, strict=True):
        batch = latest[enterprise.id]
        assert batch.id != single.id and batch.trigger == "batch"
        assert (batch.grade, batch.pd, batch.score) == (single.grade, single.pd, single.score)
        assert batch.reasons == single.reasons
        assert batch.counterfactual == single.counterfactual
        assert batch.content_hash != single.content_hash  # the trigger differs

    facts = profiles.latest_facts([e.id for e in enterprises] + [999_999])
    assert list(facts.index) == [e.id for e in enterprises]
    for enterprise in enterprises:
        row, profile = facts.loc[enterprise.id], latest[enterprise.id]
        assert row["profile_id"] == profile.id and row["grade"] == profile.grade
        assert row["grade_rank"] == profile.grade_rank
        assert row["pd"] == pytest.approx(float(profile.pd or 0))
        assert row["annual_sales"] == float(profile.annual_sales or 0)
        assert row["social_months"] == profile.social_months
    assert facts.equals(profiles.latest_facts())


def test_approving_a_version_retires_the_previous(
    app_ctx: Flask, factory: Factory, trained_model_dir: Path, tmp_path: Path
) -> None:
    first = model_registry.register(trained_model_dir, None)
    model_registry.approve(first, None, recompute=False)
    db.session.commit()
    # the same model re-saved is another artifact (its manifest's hash differs only if the
    # files do), so make a genuinely different one: another grade table row order is not
    # allowed, but another seed is
    second_dir = tmp_path / "second"
    model = load_model(trained_model_dir / "model", trusted_base=trained_model_dir)
    model.meta["note"] = "second"
    model.reference = {**model.reference, "note": "second"}
    from ml.artifacts import save_model

    save_model(model, second_dir / "model")
    second = model_registry.register(second_dir, None)
    assert second.status is ModelStatus.CANDIDATE
    assert model_registry.approved_model() is not None
    assert model_registry.approved_model().version_id == first.id  # type: ignore[union-attr]

    model_registry.approve(second, None, recompute=False)
    db.session.commit()

    db.session.refresh(first)
    assert first.status is ModelStatus.RETIRED and first.retired_at is not None
    assert second.status is ModelStatus.APPROVED and second.approved_at is not None
    serving = model_registry.approved_model()
    assert serving is not None and serving.version_id == second.id
    with pytest.raises(model_registry.RegistryError, match="retired"):
        model_registry.approve(first, None)


def test_register_refuses_a_model_of_another_feature_set(
    app_ctx: Flask, foreign_model_dir: Path
) -> None:
    with pytest.raises(model_registry.RegistryError) as refused:
        model_registry.register(foreign_model_dir, None)
    message = str(refused.value)
    assert "another feature set" in message
    assert "alpha" in message and "tax_filing_regularity_12m" in message
    assert db.session.query(ModelVersion).count() == 0


def test_register_twice_and_tampered_artifacts_are_refused(
    app_ctx: Flask, trained_model_dir: Path, tmp_path: Path
) -> None:
    version = model_registry.register(trained_model_dir, None)
    db.session.commit()
    with pytest.raises(model_registry.RegistryError, match=f"version {version.id}"):
        model_registry.register(trained_model_dir, None)
    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(trained_model_dir, tampered)
    points = tampered / "model" / "points_table.csv"
    points.write_text(points.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    db.session.delete(version)
    db.session.commit()
    with pytest.raises(model_registry.RegistryError, match="sha256"):
        model_registry.register(tampered, None)


def test_only_office_admins_approve(
    app_ctx: Flask, factory: Factory, trained_model_dir: Path
) -> None:
    version = model_registry.register(trained_model_dir, None)
    db.session.commit()
    officer = db.session.get(User, factory.user(OrgKind.OFFICE, Role.OFFICER).user_id)
    bank_admin = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    admin = db.session.get(User, factory.user(OrgKind.OFFICE).user_id)
    for actor in (officer, bank_admin):
        with pytest.raises(PermissionRefused):
            model_registry.approve(version, actor, recompute=False)
    assert version.status is ModelStatus.CANDIDATE
    model_registry.approve(version, admin, recompute=False)
    db.session.commit()
    assert version.approved_by_id == admin.id  # type: ignore[union-attr]


def test_approval_recomputes_profiles_through_a_job(
    app_ctx: Flask, factory: Factory, trained_model_dir: Path
) -> None:
    account = factory.enterprise()
    enterprise = enterprise_by_user(account.user_id)
    grant_collection(account.user_id, ("tax",))
    add_records(enterprise)
    db.session.commit()
    version = model_registry.register(trained_model_dir, None)
    model_registry.approve(version, None)
    db.session.commit()  # the job runs after the commit (eagerly in tests)

    latest = profiles.latest_profiles([enterprise.id])[enterprise.id]
    assert latest.trigger == "model_approved"
    assert latest.model_version_id == version.id and latest.grade is not None


def test_records_changed_hook_recomputes(app_ctx: Flask, factory: Factory) -> None:
    account = factory.enterprise()
    enterprise = enterprise_by_user(account.user_id)
    add_records(enterprise)
    job = profiles.records_changed([enterprise.id, enterprise.id])
    db.session.commit()
    assert job is not None and job.params["enterprise_ids"] == [enterprise.id]
    history = profiles.history(enterprise)
    assert len(history) == 1 and history[0].trigger == "records_changed"
    assert profiles.records_changed([]) is None


def test_seed_demo_model_trains_registers_and_approves(app_ctx: Flask) -> None:
    started = time.perf_counter()
    version = model_registry.seed_demo_model(1200, seed=4)
    db.session.commit()
    assert time.perf_counter() - started < 30
    assert version.status is ModelStatus.APPROVED and version.kind.value == "scorecard"
    assert version.training_summary["n_train"] + version.training_summary["n_test"] == 1200
    assert 0.5 < version.validation_report["test"]["auc"] <= 1.0
    serving = model_registry.approved_model()
    assert serving is not None and serving.version_id == version.id
    again = model_registry.seed_demo_model(1200, seed=4)  # same artifact: no second version
    assert again.id == version.id
    assert db.session.query(ModelVersion).count() == 1


def test_the_database_holds_one_approved_version_per_kind(
    app_ctx: Flask, trained_model_dir: Path
) -> None:
    first = model_registry.register(trained_model_dir, None)
    db.session.commit()
    other = ModelVersion(
        kind=first.kind,
        directory="elsewhere",
        content_hash="f" * 64,
        status=ModelStatus.APPROVED,
    )
    first.status = ModelStatus.APPROVED
    db.session.add(other)
    with pytest.raises(sa.exc.IntegrityError):
        db.session.flush()
    db.session.rollback()
