"""A deployable risk model (:class:`RiskModel`) and its on-disk artifact.

Artifact layout (a directory; every file listed with its sha256 in ``manifest.json``)::

    manifest.json        kind, created_at, library versions, feature list, file hashes,
                         content_hash = sha256 over "name:sha256\\n" of every file, sorted
    estimator.json       fitted state as plain JSON (bins/WoE/coefficients/calibration, or the
                         GBM's category codes and calibration) — no pickles anywhere
    booster.txt          LightGBM's own text model format (GBM only)
    points_table.csv     the scorecard's points table (scorecard only; what scoring uses)
    feature_specs.json   snapshot of the feature specs (labels, risk direction, actions)
    grade_bands.csv      the PD band table the grades were assigned with
    reference.json       training-population profile for PSI monitoring

Nothing is unpickled: every file is JSON, CSV or LightGBM text, so loading cannot execute code.
skops is therefore not needed (it exists to make sklearn *pickles* safe; we have none).

Typical use by the portal (an approved model version stored under a trusted directory)::

    from ml.artifacts import load_model
    from ml.features import FEATURE_NAMES, build_features

    model = load_model(store / version_dir, trusted_base=store, expected_features=FEATURE_NAMES)
    row = build_features(tables, as_of).loc[uscc].to_dict()   # one enterprise
    decision = model.decide(row)        # .pd .score .grade .reasons .counterfactual
    decision.to_dict()                  # JSON-ready, reasons/recourse in zh and en
    model.score_table(features_frame)   # batch: pd, score, grade, reasons (JSON)
    model.meta["manifest"]["content_hash"]   # the ModelVersion's artifact hash

Loading (:func:`load_model`) only reads from inside a trusted base directory: the resolved model
directory and every file in it (symlinks resolved) must lie inside the resolved base, every hash
must match, and ``expected_features`` (if given) must equal the model's feature list —
otherwise :class:`ArtifactError` / :class:`ml.tabular.FeatureSetError` with a message naming the
file or the missing/extra columns.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import importlib.metadata
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ml.counterfactual import (
    Action,
    Counterfactual,
    actions_from_specs,
    additive_subset_scores,
    search,
)
from ml.gbm import GBMModel
from ml.grades import GradeScale
from ml.reasons import (
    FeatureText,
    Reason,
    reasons_from_effects,
    reasons_json,
    scorecard_effects,
    scorecard_reasons_single,
)
from ml.scorecard import NUMERIC, Scorecard, SingleRowScorer
from ml.tabular import FeatureSetError, check_feature_set

FORMAT_VERSION = 1
LIBRARIES = ("scikit-learn", "lightgbm", "optbinning", "numpy", "pandas", "scipy")
Estimator = Scorecard | GBMModel


class ArtifactError(ValueError):
    """A model artifact is missing, untrusted, tampered with or unreadable."""


def library_versions() -> dict[str, str]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def spec_dicts(specs: Sequence[Any]) -> list[dict[str, Any]]:
    """Feature specs (dataclasses such as ``ml.features.FeatureSpec`` or dicts) as dicts."""
    out = []
    for s in specs:
        if is_dataclass(s) and not isinstance(s, type):
            out.append(asdict(s))
        else:
            out.append(dict(s))
    return out


def generic_specs(
    columns: Sequence[str], monotone: Mapping[str, object] | None = None
) -> list[dict[str, Any]]:
    """Specs for an arbitrary table: the column name as label, no actions."""
    from ml.scorecard import trend_sign

    mono = monotone or {}
    return [
        {
            "name": c,
            "source": "table",
            "label_zh": c,
            "label_en": c,
            "risk_direction": trend_sign(mono.get(c, 0)),
            "actionable": False,
            "target_value": None,
            "action_zh": "",
            "action_en": "",
        }
        for c in columns
    ]


@dataclass
class Decision:
    """One enterprise's result: calibrated 12-month PD, score, grade, reasons, recourse."""

    pd: float
    score: float
    grade: str
    reasons: list[Reason]
    counterfactual: Counterfactual | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pd": self.pd,
            "score": self.score,
            "grade": self.grade,
            "reasons": [r.to_dict() for r in self.reasons],
            "counterfactual": self.counterfactual.to_dict() if self.counterfactual else None,
        }


@dataclass
class RiskModel:
    """A fitted estimator with its grade table, feature specs and training reference profile."""

    estimator: Estimator
    grades: GradeScale
    specs: list[dict[str, Any]]
    reference: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    # -- descriptors --------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return "scorecard" if isinstance(self.estimator, Scorecard) else "gbm"

    @property
    def feature_names(self) -> list[str]:
        return list(self.estimator.feature_names_)

    @cached_property
    def labels(self) -> dict[str, FeatureText]:
        return {s["name"]: FeatureText(s["label_zh"], s["label_en"]) for s in self.specs}

    @cached_property
    def actions(self) -> list[Action]:
        return actions_from_specs(self.specs)

    @cached_property
    def scale(self) -> dict[str, float]:
        feats = self.reference.get("features", {})
        return {k: float(v["std"]) for k, v in feats.items() if v.get("std")}

    @cached_property
    def _upper_edges(self) -> list[float]:
        return [float(e) for e in self.grades.upper_edges]

    def check_features(self, columns: Sequence[str], what: str = "input") -> None:
        """Raise :class:`FeatureSetError` naming missing/extra columns."""
        check_feature_set(self.feature_names, list(columns), what)

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        self.check_features([str(c) for c in X.columns])
        return X[self.feature_names]

    # -- batch --------------------------------------------------------------------------------
    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """``pd``, ``score`` and ``grade`` per row (index kept)."""
        frame = self._frame(X)
        score = self.estimator.credit_score(frame)
        pd_ = self.estimator.pd_from_score(score)
        return pd.DataFrame(
            {"pd": pd_, "score": score, "grade": self.grades.grade_many(pd_)}, index=X.index
        )

    def explain(self, X: pd.DataFrame) -> list[list[Reason]]:
        """Reasons per row (vectorized effects; see :mod:`ml.reasons`)."""
        frame = self._frame(X)
        est = self.estimator
        if isinstance(est, Scorecard):
            n, codes = est.encode(frame)
            loss, gain = scorecard_effects(est.slots(n, codes), est.points_, self._mean_points)
            names = est.used_features_
        else:
            pts, _ = est.point_contributions(frame)
            loss, gain = np.maximum(-pts, 0.0), np.maximum(pts, 0.0)
            names = est.feature_names_
        values = [frame[name].to_numpy(dtype=object) for name in names]
        return reasons_from_effects(names, loss, gain, values, self.labels)

    def score_table(self, X: pd.DataFrame) -> pd.DataFrame:
        """``pd, score, grade, reasons`` (reasons as compact JSON) per row."""
        out = self.predict(X)
        out["reasons"] = [reasons_json(r) for r in self.explain(X)]
        return out

    # -- single decision ----------------------------------------------------------------------
    @cached_property
    def _mean_points(self) -> npt.NDArray[np.float64]:
        est = _as_scorecard(self.estimator)
        return np.array(
            [
                float((b.n * pts).sum() / max(int(b.n.sum()), 1))
                for b, pts in zip(est.used_bins_, est.points_, strict=True)
            ]
        )

    @cached_property
    def _single(self) -> tuple[SingleRowScorer, list[float], list[float], dict[str, int]]:
        est = _as_scorecard(self.estimator)
        scorer = est.prepare_single()
        best = [max(p) for p in scorer.points]
        index = {name: j for j, name in enumerate(scorer.features)}
        return scorer, best, [float(v) for v in self._mean_points], index

    def decide(self, row: Mapping[str, Any], *, counterfactual: bool = True) -> Decision:
        """Score one enterprise from a ``feature → value`` mapping (missing key = missing value).

        Scorecard: pure-Python table lookups (tens of microseconds). Raises
        :class:`FeatureSetError` if the mapping has keys the model does not know.
        """
        extra = [k for k in row if k not in set(self.feature_names)]
        if extra:
            raise FeatureSetError("input row", [], extra)
        if isinstance(self.estimator, Scorecard):
            return self._decide_scorecard(row, counterfactual)
        return self._decide_gbm(row, counterfactual)

    def _grade_index(self, pd_: float) -> int:
        return bisect.bisect_right(self._upper_edges, pd_)

    def _threshold(self, grade_idx: int) -> tuple[str | None, float]:
        """Target grade one band better and the score that must be exceeded to reach it."""
        if grade_idx == 0:
            return None, math.inf
        pd_min = self.grades.bands[grade_idx].pd_min
        return (
            self.grades.bands[grade_idx - 1].grade,
            float(self.estimator.score_from_pd(pd_min)) + 1e-9,
        )

    def _decide_scorecard(self, row: Mapping[str, Any], with_cf: bool) -> Decision:
        est = _as_scorecard(self.estimator)
        scorer, best, mean, index = self._single
        score, slots = scorer.score(row)
        pd_ = 1.0 / (1.0 + math.exp((score - est.offset_) / est.factor_))
        g = self._grade_index(pd_)
        reasons = scorecard_reasons_single(
            scorer.features, slots, scorer.points, best, mean, row, self.labels
        )
        cf = None
        if with_cf:
            target, threshold = self._threshold(g)
            gains = []
            for action in self.actions:
                gain = 0.0
                for name, new in action.apply(row).items():
                    j = index.get(name)
                    if j is not None:
                        new_slot = _slot(scorer, j, new)
                        gain += scorer.points[j][new_slot] - scorer.points[j][slots[j]]
                gains.append(gain)
            cf = search(
                row,
                self.actions,
                current_grade=self.grades.bands[g].grade,
                target_grade=target,
                threshold_score=threshold,
                scale=self.scale,
                subset_scores=additive_subset_scores(score, gains),
                pd_from_score=lambda s: 1.0 / (1.0 + math.exp((s - est.offset_) / est.factor_)),
            )
        return Decision(pd_, score, self.grades.bands[g].grade, reasons, cf)

    def _decide_gbm(self, row: Mapping[str, Any], with_cf: bool) -> Decision:
        est = _as_gbm(self.estimator)
        base_vec = est.row_matrix(row)
        pts, base = est.matrix_contributions(base_vec)
        score = float(base[0] + pts[0].sum())
        pd_ = float(est.pd_from_score(score))
        g = self._grade_index(pd_)
        names = est.feature_names_
        values = [[row.get(name)] for name in names]
        reasons = reasons_from_effects(
            names, np.maximum(-pts, 0.0), np.maximum(pts, 0.0), values, self.labels
        )[0]
        cf = None
        if with_cf:
            target, threshold = self._threshold(g)
            column = {name: i for i, name in enumerate(est.feature_names_)}

            def subset_scores(
                subsets: Sequence[Sequence[int]], changes: Sequence[dict[str, float]]
            ) -> list[float]:
                """All subsets in one booster call on a matrix of modified copies of the row."""
                M = np.repeat(base_vec, len(subsets), axis=0)
                for k, subset in enumerate(subsets):
                    for i in subset:
                        for name, value in changes[i].items():
                            if name in column:
                                M[k, column[name]] = value
                raw = np.asarray(est.booster_.predict(M, raw_score=True, num_threads=1))
                return [float(v) for v in est.offset_ - est.factor_ * est.calibration_.logit(raw)]

            cf = search(
                row,
                self.actions,
                current_grade=self.grades.bands[g].grade,
                target_grade=target,
                threshold_score=threshold,
                scale=self.scale,
                subset_scores=subset_scores,
                pd_from_score=lambda s: float(est.pd_from_score(s)),
            )
        return Decision(pd_, score, self.grades.bands[g].grade, reasons, cf)


def _as_scorecard(est: Estimator) -> Scorecard:
    if not isinstance(est, Scorecard):
        raise TypeError("this operation needs a scorecard model")
    return est


def _as_gbm(est: Estimator) -> GBMModel:
    if not isinstance(est, GBMModel):
        raise TypeError("this operation needs a GBM model")
    return est


def _slot(scorer: SingleRowScorer, j: int, value: float) -> int:
    if value != value:
        return scorer.missing[j]
    if scorer.kinds[j] == NUMERIC:
        return bisect.bisect_right(scorer.splits[j], value)
    return scorer.codes[j].get(str(value), scorer.n_categories[j])


# ---------------------------------------------------------------------------------------------
# Save / load
# ---------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(file_hashes: Mapping[str, str]) -> str:
    lines = "".join(f"{name}:{digest}\n" for name, digest in sorted(file_hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serializable: {type(obj).__name__}")


def _dump_json(obj: Any) -> str:
    from ml.validation import clean_for_json

    return json.dumps(clean_for_json(obj), ensure_ascii=False, indent=1, default=_json_default)


def save_model(model: RiskModel, directory: str | Path) -> dict[str, Any]:
    """Write the artifact into ``directory`` (created; must be empty or absent); returns the
    manifest. Raises :class:`ArtifactError` if the directory holds other files."""
    out = Path(directory)
    if out.exists() and any(out.iterdir()):
        raise ArtifactError(f"{out}: model directory is not empty")
    out.mkdir(parents=True, exist_ok=True)
    est = model.estimator
    files: dict[str, str] = {}
    files["estimator.json"] = _dump_json(est.get_state())
    if isinstance(est, GBMModel):
        files["booster.txt"] = est.booster_text()
    else:
        files["points_table.csv"] = est.points_table().to_csv(index=False)
    files["feature_specs.json"] = _dump_json(model.specs)
    files["grade_bands.csv"] = model.grades.to_csv_text()
    files["reference.json"] = _dump_json(model.reference)
    hashes = {}
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
        hashes[name] = _sha256(out / name)
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "libraries": library_versions(),
        "features": model.feature_names,
        "files": hashes,
        "content_hash": content_hash(hashes),
        "meta": model.meta,
    }
    (out / "manifest.json").write_text(_dump_json(manifest), encoding="utf-8")
    return manifest


def _inside(path: Path, base: Path) -> bool:
    try:
        path.relative_to(base)
    except ValueError:
        return False
    return True


def read_manifest(directory: str | Path, trusted_base: str | Path) -> tuple[Path, dict[str, Any]]:
    """Resolve and check the model directory against the trusted base; return it and its
    manifest. Raises :class:`ArtifactError`."""
    base = Path(trusted_base).resolve(strict=False)
    resolved = Path(directory).resolve(strict=False)
    if not _inside(resolved, base):
        raise ArtifactError(f"{directory}: model path is outside the trusted directory {base}")
    if not resolved.is_dir():
        raise ArtifactError(f"{directory}: no model directory")
    if (resolved / "model" / "manifest.json").is_file() and not (
        resolved / "manifest.json"
    ).exists():
        resolved = (resolved / "model").resolve()
        if not _inside(resolved, base):
            raise ArtifactError(f"{directory}/model: outside the trusted directory {base}")
    manifest_path = resolved / "manifest.json"
    if not manifest_path.is_file():
        raise ArtifactError(f"{resolved}: no manifest.json (not a model directory)")
    if not _inside(manifest_path.resolve(), base):
        raise ArtifactError(f"{manifest_path}: links outside the trusted directory {base}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: unsupported format_version {manifest.get('format_version')!r}"
        )
    return resolved, manifest


def load_model(
    directory: str | Path,
    *,
    trusted_base: str | Path,
    expected_features: Sequence[str] | None = None,
) -> RiskModel:
    """Load a verified artifact (see the module docstring). ``directory`` may be the model
    directory or a training output directory holding ``model/``.

    Raises :class:`ArtifactError` (outside base, symlink escape, missing file, hash mismatch,
    unreadable content) or :class:`FeatureSetError` (feature list ≠ ``expected_features``).
    """
    base = Path(trusted_base).resolve(strict=False)
    root, manifest = read_manifest(directory, base)
    files = manifest.get("files") or {}
    if content_hash(files) != manifest.get("content_hash"):
        raise ArtifactError(f"{root}/manifest.json: content hash does not match its file list")
    texts: dict[str, str] = {}
    for name, digest in files.items():
        if "/" in name or "\\" in name or name.startswith("."):
            raise ArtifactError(f"{root}/manifest.json: illegal file name {name!r}")
        path = root / name
        if not path.is_file():
            raise ArtifactError(f"{path}: file listed in the manifest is missing")
        if not _inside(path.resolve(), base):
            raise ArtifactError(f"{path}: links outside the trusted directory {base}")
        if _sha256(path) != digest:
            raise ArtifactError(f"{path}: sha256 does not match the manifest (file was modified)")
        texts[name] = path.read_text(encoding="utf-8")
    features = list(manifest.get("features") or [])
    if expected_features is not None:
        check_feature_set(features, list(expected_features), f"model {root}")
    try:
        state = json.loads(texts["estimator.json"])
        if manifest.get("kind") == "scorecard":
            estimator: Estimator = Scorecard.from_state(state)
        elif manifest.get("kind") == "gbm":
            estimator = GBMModel.from_state(state, texts["booster.txt"])
        else:
            raise ArtifactError(f"{root}: unknown model kind {manifest.get('kind')!r}")
        grades = GradeScale.from_csv_text(texts["grade_bands.csv"])
        specs = json.loads(texts["feature_specs.json"])
        reference = json.loads(texts["reference.json"])
    except KeyError as exc:
        raise ArtifactError(f"{root}: artifact lacks {exc.args[0]}") from None
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{root}: unreadable artifact ({exc})") from None
    if list(estimator.feature_names_) != features:
        raise ArtifactError(f"{root}: estimator features differ from the manifest's")
    meta = dict(manifest.get("meta") or {})
    meta["manifest"] = {k: v for k, v in manifest.items() if k != "meta"}
    meta["library_mismatch"] = {
        lib: {"saved": v, "installed": library_versions().get(lib)}
        for lib, v in (manifest.get("libraries") or {}).items()
        if library_versions().get(lib) != v
    }
    return RiskModel(estimator, grades, specs, reference, meta)


def default_model_root(model_path: str | Path) -> Path:
    """Trusted base for the command line: ``$ML_MODEL_ROOT`` if set, else the model directory
    the operator named (so nothing in it may link outside it)."""
    env = os.environ.get("ML_MODEL_ROOT")
    return Path(env) if env else Path(model_path).resolve(strict=False)
