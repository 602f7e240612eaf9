"""Model governance beyond the registry: hold-out sets, champion/challenger comparison,
population drift (PSI) of the live profiles, and the rescoring job.

Hold-out sets
    A hold-out is a table of the 39 ``ml.features`` columns plus ``defaulted`` (0/1), kept as
    ``MODEL_ROOT/holdouts/<key>/holdout.csv`` beside a ``meta.json`` that records its SHA-256,
    size, event count and where it came from; ``key`` is the first 16 hex digits of the hash.
    Loading checks the hash, so a comparison always runs on exactly the rows that were
    stored. :func:`train_synthetic` (the demo and the tests) stores the 30 % split that
    :func:`ml.cli.fit_and_report` held out, so every model trained on the same population
    with the same seed is compared on the rows none of them saw.

Comparison
    :func:`compare` loads each version's artifact from ``MODEL_ROOT`` (hashes checked),
    predicts PD on the hold-out and computes :func:`ml.validation.metrics` (AUC, KS, Gini,
    Brier, ECE) and :func:`ml.validation.calibration_table` for each — the same functions
    that wrote the versions' validation reports.

Drift
    :func:`population_drift` builds the live population from the newest credit profile of
    every enterprise (its stored features), scores it with the version under review and
    computes :func:`ml.validation.psi` of every feature and of the score against the
    training population's profile saved in the artifact. A PSI above
    :data:`ml.validation.PSI_SHIFTED` (0.25) is flagged.

Rescoring
    :func:`start_rescore` queues a ``models.rescore`` job that adds a new snapshot
    (trigger ``rescore``) for every enterprise with the approved version, chunk by chunk,
    committing the chunk's profiles together with the job's progress.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l

from app.jobs import chunked_job, enqueue
from app.services import audit, model_registry, profiles
from app.services.model_registry import RegistryError
from ml.features import FEATURE_NAMES, FEATURE_SPECS
from ml.validation import PSI_SHIFTED, calibration_table, metrics, psi
from models import CreditProfile, Enterprise, Job, JobStatus, ModelKind, ModelVersion, User, db
from models.base import utcnow

HOLDOUT_DIR = "holdouts"
LABEL = "defaulted"
RESCORE_JOB = "models.rescore"
RESCORE_CHUNK = 500
_KEY = re.compile(r"^[0-9a-f]{16}$")
_FEATURE_LABELS = {s.name: (s.label_zh, s.label_en) for s in FEATURE_SPECS}


# ---------------------------------------------------------------------------------------------
# Hold-out sets
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Holdout:
    key: str
    name: str
    source: str
    n: int
    n_events: int
    sha256: str
    created_at: str


def _holdout_root() -> Path:
    return model_registry.model_root() / HOLDOUT_DIR


def save_holdout(X: pd.DataFrame, y: npt.ArrayLike, *, name: str, source: str) -> Holdout:
    """Store a hold-out set (features in :data:`ml.features.FEATURE_NAMES` order + labels).

    Storing the same rows again returns the stored one. Raises :class:`RegistryError` for
    missing feature columns or labels other than 0/1.
    """
    missing = [f for f in FEATURE_NAMES if f not in X.columns]
    if missing:
        raise RegistryError(f"hold-out lacks feature(s): {', '.join(missing)}")
    labels = np.asarray(y, dtype=np.int64)
    if len(labels) != len(X) or not set(np.unique(labels)) <= {0, 1}:
        raise RegistryError("hold-out labels must be 0/1, one per row")
    frame = X[FEATURE_NAMES].reset_index(drop=True).astype(np.float64)
    frame[LABEL] = labels
    data = frame.to_csv(index=False, float_format="%.17g").encode("utf-8")
    sha = hashlib.sha256(data).hexdigest()
    key = sha[:16]
    directory = _holdout_root() / key
    existing = _read_meta(directory)
    if existing is not None:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "holdout.csv").write_bytes(data)
    holdout = Holdout(
        key=key,
        name=name.strip()[:200] or key,
        source=source[:300],
        n=len(frame),
        n_events=int(labels.sum()),
        sha256=sha,
        created_at=utcnow().isoformat(timespec="seconds"),
    )
    (directory / "meta.json").write_text(
        json.dumps(holdout.__dict__, ensure_ascii=False), encoding="utf-8"
    )
    return holdout


def _read_meta(directory: Path) -> Holdout | None:
    meta = directory / "meta.json"
    if not meta.is_file() or not (directory / "holdout.csv").is_file():
        return None
    try:
        values = json.loads(meta.read_text(encoding="utf-8"))
        return Holdout(**{k: values[k] for k in Holdout.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def holdouts() -> list[Holdout]:
    """Every stored hold-out set, newest first."""
    root = _holdout_root()
    if not root.is_dir():
        return []
    found = [h for d in root.iterdir() if _KEY.match(d.name) and (h := _read_meta(d))]
    return sorted(found, key=lambda h: (h.created_at, h.key), reverse=True)


def load_holdout(key: str) -> tuple[Holdout, pd.DataFrame, npt.NDArray[np.int64]]:
    """The stored rows of hold-out ``key``; :class:`RegistryError` if unknown or altered."""
    if not _KEY.match(key or ""):
        raise RegistryError(_l("There is no hold-out set %(key)s.", key=repr(key)))
    directory = _holdout_root() / key
    holdout = _read_meta(directory)
    if holdout is None:
        raise RegistryError(_l("There is no hold-out set %(key)s.", key=repr(key)))
    data = (directory / "holdout.csv").read_bytes()
    if hashlib.sha256(data).hexdigest() != holdout.sha256:
        raise RegistryError(
            _l("Hold-out set %(key)s: the file was altered since it was stored.", key=key)
        )
    frame = pd.read_csv(io.BytesIO(data), dtype=np.float64)
    y = frame.pop(LABEL).to_numpy(dtype=np.int64)
    return holdout, frame, y


# ---------------------------------------------------------------------------------------------
# Champion / challenger
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFigures:
    version: ModelVersion
    metrics: dict[str, Any]
    calibration: list[dict[str, Any]]


@dataclass(frozen=True)
class Comparison:
    holdout: Holdout
    champion: ModelFigures
    challenger: ModelFigures

    @property
    def rows(self) -> list[tuple[str, float | None, float | None, bool]]:
        """(metric, champion, challenger, challenger better) for AUC, KS, Gini, Brier, ECE."""
        out = []
        for name, higher_better in (
            ("auc", True),
            ("ks", True),
            ("gini", True),
            ("brier", False),
            ("ece", False),
        ):
            a, b = self.champion.metrics.get(name), self.challenger.metrics.get(name)
            better = a is not None and b is not None and (b > a if higher_better else b < a)
            out.append((name, a, b, better))
        return out


def figures_on(version: ModelVersion, X: pd.DataFrame, y: npt.ArrayLike) -> ModelFigures:
    model = model_registry.load_version(version)
    pd_ = model.predict(X)["pd"].to_numpy(dtype=np.float64)
    return ModelFigures(version, metrics(y, pd_), calibration_table(y, pd_))


def compare(champion: ModelVersion, challenger: ModelVersion, holdout_key: str) -> Comparison:
    """Both versions' figures on the same stored hold-out set (see the module docstring)."""
    holdout, X, y = load_holdout(holdout_key)
    return Comparison(holdout, figures_on(champion, X, y), figures_on(challenger, X, y))


# ---------------------------------------------------------------------------------------------
# Population drift
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureDrift:
    name: str
    label_zh: str
    label_en: str
    psi: float | None

    @property
    def shifted(self) -> bool:
        return self.psi is not None and self.psi > PSI_SHIFTED


@dataclass(frozen=True)
class DriftReport:
    version: ModelVersion | None
    n_live: int
    n_train: int
    score_psi: float | None
    features: list[FeatureDrift] = field(default_factory=list)
    threshold: float = PSI_SHIFTED
    population: int = 0  # enterprises with a profile
    sampled: bool = False  # more than DRIFT_SAMPLE of them: every k-th compared

    @property
    def score_shifted(self) -> bool:
        return self.score_psi is not None and self.score_psi > PSI_SHIFTED

    @property
    def shifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.shifted]


def drift_against(
    reference: Mapping[str, Any], X: pd.DataFrame, score: npt.ArrayLike
) -> tuple[float, list[FeatureDrift]]:
    """PSI of the score and of each feature of ``X`` against a training ``reference``
    (:func:`ml.validation.reference_profile`), features sorted by PSI, largest first."""
    result = psi(reference, X, score)
    rows = []
    for name, value in result["features"].items():
        zh, en = _FEATURE_LABELS.get(name, (name, name))
        rows.append(FeatureDrift(name, zh, en, value))
    rows.sort(key=lambda f: (f.psi is None, -(f.psi or 0.0), f.name))
    return float(result["score"]), rows


DRIFT_SAMPLE = 20_000
"""Enterprises whose features the drift page compares at most: a systematic sample of a
larger population (every k-th enterprise by id). PSI over ten bins moves by about a
thousandth between such samples (simulated: 20,000 of 500,000, mean 0.0013, 95 % within
0.003), far below the 0.1 and 0.25 thresholds, where reading and scoring half a million
profiles in the request would take tens of seconds."""


def profiled_ids() -> list[int]:
    """The enterprises that have a credit profile, by id (one index probe each)."""
    has_profile = sa.exists().where(CreditProfile.enterprise_id == Enterprise.id)
    query = sa.select(Enterprise.id).where(has_profile).order_by(Enterprise.id)
    return list(db.session.scalars(query))


def live_features(sample: int | None = None, among: list[int] | None = None) -> pd.DataFrame:
    """The newest profile's features of every enterprise that has one (index enterprise id)
    — or, with ``sample``, of every k-th of them by id, about ``sample`` (the same ones
    from one request to the next while the profiled enterprises do not change)."""
    c = CreditProfile
    rows: Iterable[Any]
    if sample is None:
        newest = sa.select(sa.func.max(c.id)).group_by(c.enterprise_id).scalar_subquery()
        rows = db.session.execute(sa.select(c.enterprise_id, c.features).where(c.id.in_(newest)))
    else:
        ids = profiled_ids() if among is None else among
        step = max(1, -(-len(ids) // max(sample, 1)))
        rows = profiles.latest_columns(ids[::step], ["features"])
    records = {eid: feats or {} for eid, feats in rows}
    frame = pd.DataFrame.from_dict(records, orient="index", columns=FEATURE_NAMES)
    frame = frame.reindex(columns=FEATURE_NAMES).apply(pd.to_numeric, errors="coerce")
    return frame.astype(np.float64).sort_index()


def population_drift(version: ModelVersion | None = None) -> DriftReport:
    """Drift of the live population against ``version``'s training population (default:
    the serving version). The live scores are that version's scores of the live features."""
    version = version or model_registry.serving_version()
    if version is None:
        return DriftReport(None, 0, 0, None)
    model = model_registry.load_version(version)
    reference = model.reference
    n_train = int(reference.get("n", 0))
    profiled = profiled_ids()
    population = len(profiled)
    sampled = population > DRIFT_SAMPLE
    X = live_features(DRIFT_SAMPLE, among=profiled) if sampled else live_features()
    if X.empty:
        return DriftReport(version, 0, n_train, None)
    score = model.predict(X)["score"].to_numpy(dtype=np.float64)
    score_psi, rows = drift_against(reference, X, score)
    return DriftReport(
        version, len(X), n_train, score_psi, rows, population=population, sampled=sampled
    )


# ---------------------------------------------------------------------------------------------
# Rescoring
# ---------------------------------------------------------------------------------------------
def approve_and_rescore(version: ModelVersion, actor: User | None) -> Job | None:
    """Approve ``version`` (the previous approved one of its kind is retired) and, if it is
    now the serving version, queue the rescoring job whose progress the office watches."""
    model_registry.approve(version, actor, recompute=False)
    serving = model_registry.serving_version()
    if serving is None or serving.id != version.id:
        return None
    return start_rescore(actor)


def running_rescore() -> Job | None:
    return db.session.scalar(
        sa.select(Job)
        .where(Job.kind == RESCORE_JOB, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        .order_by(Job.id.desc())
        .limit(1)
    )


def latest_rescore() -> Job | None:
    return db.session.scalar(
        sa.select(Job).where(Job.kind == RESCORE_JOB).order_by(Job.id.desc()).limit(1)
    )


def start_rescore(actor: User | None) -> Job:
    """Queue the recomputation of every enterprise's profile with the approved version (runs
    after the caller commits). A rescore with the same version already queued or running is
    returned instead of a second one. Raises :class:`PermissionRefused` (not an office admin) or
    :class:`RegistryError` (no approved version)."""
    model_registry._require_office(actor, admin=True)
    serving = model_registry.serving_version()
    if serving is None:
        raise RegistryError(_l("No model version is approved: approve one before rescoring."))
    running = running_rescore()
    if running is not None and running.params.get("model_version_id") == serving.id:
        return running
    n = db.session.scalar(sa.select(sa.func.count()).select_from(Enterprise)) or 0
    job = enqueue(RESCORE_JOB, steps_total=int(n), model_version_id=serving.id)
    audit.record(
        "model.rescore",
        actor=actor,
        object_type="model_version",
        object_id=serving.id,
        details={"job_id": job.id, "enterprises": int(n)},
    )
    return job


def _plan_rescore(job: Job) -> list[tuple[dict[str, Any], int]]:
    """One chunk per ``RESCORE_CHUNK`` enterprises (ids as they are when the job starts)."""
    ids = list(db.session.scalars(sa.select(Enterprise.id).order_by(Enterprise.id)))
    size = int(current_app.config.get("RESCORE_CHUNK", RESCORE_CHUNK))
    job.result = {"profiles": 0, "model_version_id": job.params.get("model_version_id")}
    return [({"ids": ids[i : i + size]}, len(ids[i : i + size])) for i in range(0, len(ids), size)]


@chunked_job(RESCORE_JOB, plan=_plan_rescore)
def _rescore_chunk(job: Job, payload: dict[str, Any]) -> dict[str, Any]:
    """One chunk: a snapshot per enterprise, committed by the runner together with the
    chunk's "done" (a chunk done twice after a worker died still adds one snapshot each)."""
    ids = [int(i) for i in payload["ids"]]
    added = profiles.compute_all(ids, trigger="rescore", now=job.started_at, chunk=len(ids) or 1)
    return {"profiles": added}


# ---------------------------------------------------------------------------------------------
# Training on the synthetic population (demo, tests)
# ---------------------------------------------------------------------------------------------
def train_synthetic(
    kind: ModelKind, n_enterprises: int, seed: int, out: Path
) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
    """Train ``kind`` on :func:`ml.synth.generate` (n, seed) the way ``seed_demo_model`` does,
    write ``out/model`` and ``out/report.json``, and return the hold-out rows
    :func:`ml.cli.fit_and_report` kept aside (the same for every kind with this seed)."""
    from sklearn.model_selection import train_test_split

    from ml import synth
    from ml.artifacts import save_model, spec_dicts
    from ml.cli import fit_and_report, make_estimator
    from ml.features import build_features
    from ml.validation import clean_for_json

    tables = synth.generate(n_enterprises, seed)
    truth = tables.pop(synth.schema.TRUTH)
    features = build_features(tables, synth.DEFAULT_AS_OF)
    labels = truth.drop_duplicates("uscc").set_index("uscc")["defaulted"]
    y = labels.reindex(features.index).to_numpy(dtype=np.int64)
    X = features.reset_index(drop=True)
    monotone = {s.name: s.risk_direction for s in FEATURE_SPECS if s.risk_direction}
    model, report = fit_and_report(
        make_estimator(kind.value, monotone=monotone, seed=seed),
        X,
        y,
        seed=seed,
        specs=spec_dicts(FEATURE_SPECS),
        monotone=monotone,
        extra={"source": synthetic_source(n_enterprises, seed), "as_of": "synthetic"},
        with_cv=False,
    )
    manifest = save_model(model, out / "model")
    report["content_hash"] = manifest["content_hash"]
    (out / "report.json").write_text(
        json.dumps(clean_for_json(report), ensure_ascii=False), encoding="utf-8"
    )
    # fit_and_report's split, reproduced: same labels, same seed → the same rows.
    _, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=seed)
    return X.iloc[test].reset_index(drop=True), y[test]


def synthetic_source(n_enterprises: int, seed: int) -> str:
    return f"ml.synth n={n_enterprises} seed={seed}"


def seed_demo_governance(n_enterprises: int = 3000, seed: int = 2026) -> Holdout:
    """For the demo: a LightGBM challenger (candidate) trained on the same synthetic
    population as the demo scorecard, and that population's hold-out set. A second run adds
    nothing. Flushed, not committed."""
    import tempfile

    source = synthetic_source(n_enterprises, seed)
    have_gbm = any(
        v.kind is ModelKind.GBM and v.training_summary.get("source") == source
        for v in model_registry.versions()
    )
    have_holdout = next((h for h in holdouts() if h.source == source), None)
    if have_gbm and have_holdout is not None:
        return have_holdout
    with tempfile.TemporaryDirectory(prefix="xinyidai-challenger-") as tmp:
        X, y = train_synthetic(ModelKind.GBM, n_enterprises, seed, Path(tmp))
        if not have_gbm:
            model_registry.register(tmp, None)
    return have_holdout or save_holdout(X, y, name=f"Synthetic hold-out ({source})", source=source)


def calibration_pairs(comparison: Comparison) -> Sequence[tuple[dict[str, Any], dict[str, Any]]]:
    """Champion's and challenger's calibration deciles side by side."""
    return list(
        zip(comparison.champion.calibration, comparison.challenger.calibration, strict=False)
    )
