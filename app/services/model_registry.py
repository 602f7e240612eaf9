"""Model versions: register an ``ml`` artifact, approve it for production, serve it.

Artifacts live under ``MODEL_ROOT`` (config or environment; default ``instance/models``) and
are loaded only from there (:func:`ml.artifacts.load_model` with ``MODEL_ROOT`` as the trusted
base: every file's hash is checked, nothing is unpickled). :func:`register` copies a model
directory (or a training output directory holding ``model/``) into
``MODEL_ROOT/<kind>-<hash>``, loads it back to verify it and refuses a model built on another
feature set than :data:`ml.features.FEATURE_NAMES`.

At most one version per kind is *approved*; :func:`approve` retires the previous one (a partial
unique index enforces it). Profiles are scored by the approved version of
``PROFILE_MODEL_KIND`` (config, default ``scorecard``), or of the other kind when that one has
none. :func:`approved_model` loads it once per process and reloads when another version is
approved.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l

from app.services import audit
from app.services.accounts import PermissionRefused
from ml.artifacts import ArtifactError, RiskModel, load_model, read_manifest
from ml.features import FEATURE_NAMES
from ml.tabular import FeatureSetError
from models import ModelKind, ModelStatus, ModelVersion, OrgKind, Role, User, db
from models.base import utcnow

DEFAULT_PROFILE_KIND = ModelKind.SCORECARD
_REPORT_KEYS = ("auc", "ks", "gini", "brier", "ece", "n_train", "n_test", "cv_auc_mean")


class RegistryError(ValueError):
    """The artifact cannot be registered or the version cannot change state (message says why)."""


@dataclass(frozen=True)
class ServingModel:
    """The approved model that scores profiles now."""

    version_id: int
    kind: ModelKind
    content_hash: str
    model: RiskModel


def model_root() -> Path:
    """The trusted model directory (created if missing)."""
    configured = current_app.config.get("MODEL_ROOT") or os.environ.get("MODEL_ROOT")
    root = Path(configured) if configured else Path(current_app.instance_path) / "models"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def _require_office(actor: User | None, *, admin: bool) -> None:
    """``None`` is the platform operator at the command line."""
    if actor is None:
        return
    if actor.org_kind is not OrgKind.OFFICE or (admin and actor.role is not Role.ADMIN):
        raise PermissionRefused("Only the financial office's administrators manage models.")


def _read_report(source: Path) -> dict[str, Any]:
    for candidate in (source / "report.json", source.parent / "report.json"):
        if candidate.is_file():
            try:
                report = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise RegistryError(f"{candidate}: unreadable validation report ({exc})") from None
            return dict(report) if isinstance(report, dict) else {}
    return {}


def register(directory: str | Path, actor: User | None) -> ModelVersion:
    """Copy, verify and record a model artifact as a *candidate* version (flushed).

    Raises :class:`RegistryError` (not a model, tampered, another feature set, already
    registered) or :class:`PermissionRefused` (actor outside the office).
    """
    _require_office(actor, admin=False)
    source = Path(directory).resolve()
    try:
        model_dir, manifest = read_manifest(source, source)
    except ArtifactError as exc:
        raise RegistryError(str(exc)) from None
    content_hash = str(manifest.get("content_hash") or "")
    kind_value = str(manifest.get("kind") or "")
    if kind_value not in {k.value for k in ModelKind}:
        raise RegistryError(f"{model_dir}: unknown model kind {kind_value!r}")
    features = [str(f) for f in manifest.get("features") or []]
    if features != FEATURE_NAMES:
        unknown = [f for f in features if f not in FEATURE_NAMES]
        lacking = [f for f in FEATURE_NAMES if f not in features]
        parts = []
        if unknown:
            parts.append(f"it uses feature(s) the platform does not build: {', '.join(unknown)}")
        if lacking:
            parts.append(f"it lacks feature(s) the platform builds: {', '.join(lacking)}")
        if not parts:
            parts.append("its features are in another order")
        raise RegistryError(
            f"model {model_dir} was trained on another feature set than ml.features — "
            f"{'; '.join(parts)}. Train it with `python -m ml train-records`."
        )
    existing = db.session.scalar(
        sa.select(ModelVersion).where(ModelVersion.content_hash == content_hash)
    )
    if existing is not None:
        raise RegistryError(_l("This model is already registered as version %(n)d.", n=existing.id))

    root = model_root()
    name = f"{kind_value}-{content_hash[:16]}"
    target = root / name
    copied = False
    if model_dir != target:
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(model_dir, target, symlinks=False)
        copied = True
    try:
        model = load_model(target, trusted_base=root, expected_features=FEATURE_NAMES)
    except (ArtifactError, FeatureSetError) as exc:
        if copied:
            shutil.rmtree(target, ignore_errors=True)
        raise RegistryError(str(exc)) from None

    report = _read_report(source if source == model_dir else model_dir.parent)
    meta = {k: v for k, v in model.meta.items() if k not in {"manifest", "library_mismatch"}}
    summary = {
        **meta,
        **{k: report[k] for k in _REPORT_KEYS if k in report},
        "created_at": manifest.get("created_at"),
        "libraries": manifest.get("libraries", {}),
        "library_mismatch": model.meta.get("library_mismatch", {}),
        "n_features": len(features),
        "features_used": report.get("features_used", features),
    }
    version = ModelVersion(
        kind=ModelKind(kind_value),
        directory=name,
        content_hash=content_hash,
        features=features,
        training_summary=summary,
        validation_report=report,
        status=ModelStatus.CANDIDATE,
        created_by_id=actor.id if actor else None,
    )
    db.session.add(version)
    db.session.flush()
    audit.record(
        "model.register",
        actor=actor,
        object_type="model_version",
        object_id=version.id,
        details={"kind": kind_value, "content_hash": content_hash},
    )
    return version


def approve(version: ModelVersion, actor: User | None, *, recompute: bool = True) -> None:
    """Make ``version`` the approved one of its kind; the previous approved version is retired.

    With ``recompute`` every enterprise's profile is recomputed by a job once the caller
    commits (see :func:`app.services.profiles.enqueue_recompute`). Raises
    :class:`PermissionRefused` unless ``actor`` is an office administrator (``None`` = the
    command line) and :class:`RegistryError` for a retired version.
    """
    _require_office(actor, admin=True)
    if version.status is ModelStatus.APPROVED:
        return
    if version.status is ModelStatus.RETIRED:
        raise RegistryError(
            _l("Version %(n)d is retired; register a new version instead.", n=version.id)
        )
    now = utcnow()
    previous = db.session.scalars(
        sa.select(ModelVersion)
        .where(ModelVersion.kind == version.kind, ModelVersion.status == ModelStatus.APPROVED)
        .with_for_update()
    ).all()
    for old in previous:
        old.status = ModelStatus.RETIRED
        old.retired_at = now
        old.retired_by_id = actor.id if actor else None
    db.session.flush()
    version.status = ModelStatus.APPROVED
    version.approved_at = now
    version.approved_by_id = actor.id if actor else None
    db.session.flush()
    audit.record(
        "model.approve",
        actor=actor,
        object_type="model_version",
        object_id=version.id,
        details={"kind": version.kind.value, "retired": [old.id for old in previous]},
    )
    if recompute:
        from app.services.profiles import enqueue_recompute

        enqueue_recompute(trigger="model_approved")


def retire(version: ModelVersion, actor: User | None) -> None:
    """Take ``version`` out of service for good (a retired version is never approved again).

    Retiring the approved version leaves its kind without one: profiles computed afterwards
    carry no grade until another version is approved. Raises :class:`PermissionRefused`
    unless ``actor`` is an office administrator (``None`` = the command line).
    """
    _require_office(actor, admin=True)
    if version.status is ModelStatus.RETIRED:
        return
    was = version.status
    version.status = ModelStatus.RETIRED
    version.retired_at = utcnow()
    version.retired_by_id = actor.id if actor else None
    db.session.flush()
    audit.record(
        "model.retire",
        actor=actor,
        object_type="model_version",
        object_id=version.id,
        details={"kind": version.kind.value, "was": was.value},
    )


def load_version(version: ModelVersion) -> RiskModel:
    """Load any registered version's artifact from ``MODEL_ROOT`` (hashes checked).

    Raises :class:`RegistryError` if the artifact is missing, altered or another model.
    """
    root = model_root()
    try:
        model = load_model(
            root / version.directory, trusted_base=root, expected_features=FEATURE_NAMES
        )
    except (ArtifactError, FeatureSetError) as exc:
        raise RegistryError(f"version {version.id}: {exc}") from None
    if model.meta.get("manifest", {}).get("content_hash") != version.content_hash:
        raise RegistryError(
            _l("Version %(n)d: the artifact on disk is another model.", n=version.id)
        )
    return model


def versions() -> list[ModelVersion]:
    return list(db.session.scalars(sa.select(ModelVersion).order_by(ModelVersion.id.desc())))


def serving_version() -> ModelVersion | None:
    """The approved version that scores profiles (``PROFILE_MODEL_KIND`` first)."""
    preferred = ModelKind(current_app.config.get("PROFILE_MODEL_KIND", DEFAULT_PROFILE_KIND))
    approved = db.session.scalars(
        sa.select(ModelVersion).where(ModelVersion.status == ModelStatus.APPROVED)
    ).all()
    approved = sorted(approved, key=lambda v: (v.kind is not preferred, v.id))
    return approved[0] if approved else None


_cache_lock = threading.Lock()
_cache: dict[tuple[str, int, str], RiskModel] = {}


def approved_model() -> ServingModel | None:
    """The serving model, loaded once per process (per version) and kept in memory.

    Raises :class:`RegistryError` if the approved artifact is missing or was altered on disk.
    """
    version = serving_version()
    if version is None:
        return None
    root = model_root()
    key = (str(root), version.id, version.content_hash)
    with _cache_lock:
        model = _cache.get(key)
        if model is None:
            try:
                model = load_model(
                    root / version.directory, trusted_base=root, expected_features=FEATURE_NAMES
                )
            except (ArtifactError, FeatureSetError) as exc:
                raise RegistryError(f"approved version {version.id}: {exc}") from None
            if model.meta.get("manifest", {}).get("content_hash") != version.content_hash:
                raise RegistryError(
                    f"approved version {version.id}: the artifact on disk is another model"
                )
            _cache.clear()  # only the serving model is kept
            _cache[key] = model
    return ServingModel(version.id, version.kind, version.content_hash, model)


def seed_demo_model(
    n_enterprises: int = 3000,
    seed: int = 0,
    actor: User | None = None,
    *,
    recompute: bool = False,
) -> ModelVersion:
    """Train a scorecard on a synthetic population (:mod:`ml.synth`), register and approve it
    (or approve the already registered identical artifact: same ``n_enterprises`` and
    ``seed`` give the same model).

    For the demo: a few seconds for 3,000 enterprises. Flushed, not committed. With
    ``recompute`` every profile is recomputed by a job after the commit; by default the caller
    computes the profiles it wants (:func:`app.services.profiles.compute_all`).
    """
    import numpy as np

    from ml import synth
    from ml.artifacts import save_model, spec_dicts
    from ml.cli import fit_and_report, make_estimator
    from ml.features import FEATURE_SPECS, build_features
    from ml.validation import clean_for_json

    tables = synth.generate(n_enterprises, seed)
    truth = tables.pop(synth.schema.TRUTH)
    features = build_features(tables, synth.DEFAULT_AS_OF)
    labels = truth.drop_duplicates("uscc").set_index("uscc")["defaulted"]
    y = labels.reindex(features.index).to_numpy(dtype=np.int64)
    monotone = {s.name: s.risk_direction for s in FEATURE_SPECS if s.risk_direction}
    model, report = fit_and_report(
        make_estimator("scorecard", monotone=monotone, seed=seed),
        features.reset_index(drop=True),
        y,
        seed=seed,
        specs=spec_dicts(FEATURE_SPECS),
        monotone=monotone,
        extra={"source": f"ml.synth n={n_enterprises} seed={seed}", "as_of": "synthetic"},
        with_cv=False,
    )
    with tempfile.TemporaryDirectory(prefix="xinyidai-model-") as tmp:
        out = Path(tmp)
        manifest = save_model(model, out / "model")
        report["content_hash"] = manifest["content_hash"]
        (out / "report.json").write_text(
            json.dumps(clean_for_json(report), ensure_ascii=False), encoding="utf-8"
        )
        existing = db.session.scalar(
            sa.select(ModelVersion).where(ModelVersion.content_hash == manifest["content_hash"])
        )
        version = existing or register(out, actor)
    approve(version, actor, recompute=recompute)
    return version
