"""Command line of the risk-model library (``python -m ml …``).

Commands (exact; other code and checks rely on them)::

    python -m ml synth --enterprises N --seed S --out DIR            (ml.synth)
    python -m ml train --table FILE.csv --target COL [--positive VALUE]
                       --model scorecard|gbm [--seed S] --out DIR
    python -m ml train-records --records DIR --model scorecard|gbm [--seed S] --out DIR2
    python -m ml score --model DIR2 --records DIR --out scores.csv
    python -m ml score --model DIR --table FILE.csv [--id COL] --out scores.csv

``train`` writes ``DIR/model/`` (see :mod:`ml.artifacts`), ``DIR/report.json`` (hold-out
``auc, ks, gini, brier, ece, n_train, n_test``, ``cv_auc_mean``/``cv_auc_std`` from 5-fold
stratified CV over all rows with the whole estimator — binning, WoE, regression — refitted in
every fold, plus the full validation report) and ``DIR/report.html``.

Bad input prints one line ``error: …`` naming the file/column and exits with status 2.
Warnings (dropped constant/empty columns, rows without a target) go to stderr as
``warning: …``. Set ``ML_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

EXIT_BAD_INPUT = 2


class CLIError(ValueError):
    """A user error; the message is printed as one line."""


# ---------------------------------------------------------------------------------------------
# Model construction and training (shared with the benchmarks)
# ---------------------------------------------------------------------------------------------
def make_estimator(
    kind: str,
    *,
    monotone: Mapping[str, object] | None = None,
    categorical: Sequence[str] | None = None,
    seed: int = 0,
) -> Any:
    from ml.gbm import GBMModel
    from ml.scorecard import Scorecard

    if kind == "scorecard":
        return Scorecard(monotone=monotone, categorical=categorical, random_state=seed)
    if kind == "gbm":
        return GBMModel(monotone=monotone, categorical=categorical, random_state=seed)
    raise CLIError(f"unknown model kind {kind!r}; use scorecard or gbm")


def cv_auc(estimator: Any, X: pd.DataFrame, y: npt.NDArray[np.int64], seed: int) -> list[float]:
    """5-fold stratified CV AUC; the whole estimator (binning included) is refitted per fold.

    Calibration is switched off inside the folds: Platt scaling is monotone, so AUC is the same
    with or without it, and skipping it saves three refits per fold.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("model", clone(estimator).set_params(calibration="none"))])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_val_score(pipe, X, y, cv=folds, scoring="roc_auc", n_jobs=1, error_score="raise")
    return [float(s) for s in scores]


def fit_and_report(
    estimator: Any,
    X: pd.DataFrame,
    y: npt.NDArray[np.int64],
    *,
    seed: int,
    specs: list[dict[str, Any]],
    monotone: Mapping[str, object],
    segments: pd.DataFrame | None = None,
    extra: Mapping[str, Any] | None = None,
    with_cv: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Stratified 70/30 split, fit, validate; returns the :class:`RiskModel` and the report."""
    from sklearn.model_selection import train_test_split

    from ml.artifacts import RiskModel
    from ml.grades import load_grade_scale
    from ml.validation import monotonicity_check, reference_profile, validation_report

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.3, stratify=y, random_state=seed)
    X_tr, X_te = X.iloc[tr].reset_index(drop=True), X.iloc[te].reset_index(drop=True)
    y_tr, y_te = y[tr], y[te]
    started = time.perf_counter()
    estimator.fit(X_tr, y_tr)
    fit_seconds = time.perf_counter() - started
    score_tr = estimator.credit_score(X_tr)
    score_te = estimator.credit_score(X_te)
    pd_tr = estimator.pd_from_score(score_tr)
    pd_te = estimator.pd_from_score(score_te)
    reference = reference_profile(X_tr, score_tr)
    model = RiskModel(estimator, load_grade_scale(), specs, reference, dict(extra or {}))
    seg_tr = segments.iloc[tr].reset_index(drop=True) if segments is not None else None
    seg_te = segments.iloc[te].reset_index(drop=True) if segments is not None else None
    report = validation_report(
        y_train=y_tr,
        pd_train=pd_tr,
        y_test=y_te,
        pd_test=pd_te,
        X_test=X_te,
        score_test=score_te,
        reference=reference,
        monotonicity=monotonicity_check(estimator, X, monotone, seed=seed),  # train + hold-out rows
        segments_train=seg_tr,
        segments_test=seg_te,
    )
    test = report["test"]
    head: dict[str, Any] = {
        **(dict(extra) if extra else {}),
        "model": model.kind,
        "seed": seed,
        "auc": test["auc"],
        "ks": test["ks"],
        "gini": test["gini"],
        "brier": test["brier"],
        "ece": test["ece"],
        "n_train": len(y_tr),
        "n_test": len(y_te),
        "fit_seconds": round(fit_seconds, 3),
        "features": list(X.columns),
    }
    used = getattr(estimator, "used_features_", None)
    if used is not None:
        head["features_used"] = list(used)
    if with_cv:
        cv = cv_auc(estimator, X, y, seed)
        head.update(cv_auc=cv, cv_auc_mean=float(np.mean(cv)), cv_auc_std=float(np.std(cv)))
    model.meta.update({k: head[k] for k in ("model", "seed", "auc", "n_train", "n_test")})
    return model, {**head, **report}


def _write_outputs(model: Any, report: dict[str, Any], out: Path) -> None:
    from ml.artifacts import save_model
    from ml.validation import clean_for_json, report_html

    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    if model_dir.exists():
        raise CLIError(f"{model_dir}: already exists; choose a new --out directory")
    manifest = save_model(model, model_dir)
    report["content_hash"] = manifest["content_hash"]
    (out / "report.json").write_text(
        json.dumps(clean_for_json(report), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    (out / "report.html").write_text(
        report_html(report, f"Validation report — {model.kind}"), encoding="utf-8"
    )


def _summary_line(report: Mapping[str, Any]) -> str:
    keys = (
        "model",
        "auc",
        "ks",
        "gini",
        "brier",
        "ece",
        "n_train",
        "n_test",
        "cv_auc_mean",
        "cv_auc_std",
    )
    return json.dumps({k: report[k] for k in keys if k in report})


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------
def _parse_monotone(items: Sequence[str] | None, columns: Sequence[str]) -> dict[str, str]:
    from ml.scorecard import normalize_trend

    out: dict[str, str] = {}
    for item in items or []:
        name, _, trend = item.partition("=")
        if name not in columns:
            raise CLIError(f"--monotone {item!r}: no column {name!r} in the table")
        try:
            norm = normalize_trend(trend.strip())
        except ValueError as exc:
            raise CLIError(f"--monotone {item!r}: {exc}") from None
        if norm:
            out[name] = norm
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from ml.artifacts import generic_specs
    from ml.tabular import load_table

    loaded = load_table(args.table, args.target, args.positive)
    for message in loaded.warnings:
        print(f"warning: {message}", file=sys.stderr)
    minority = int(min(loaded.y.sum(), len(loaded.y) - loaded.y.sum()))
    if minority < 10:
        raise CLIError(
            f"{args.table}: target column {args.target!r} has only {minority} row(s) of its "
            "rarer class; at least 10 are needed for a 70/30 split and 5-fold CV"
        )
    monotone = _parse_monotone(args.monotone, list(loaded.X.columns))
    estimator = make_estimator(
        args.model, monotone=monotone, categorical=loaded.categorical, seed=args.seed
    )
    model, report = fit_and_report(
        estimator,
        loaded.X,
        loaded.y,
        seed=args.seed,
        specs=generic_specs(list(loaded.X.columns), monotone),
        monotone=monotone,
        segments=loaded.X,
        extra={
            "source": str(args.table),
            "target": args.target,
            "positive": loaded.positive,
            "dropped_columns": loaded.dropped_columns,
            "categorical_columns": loaded.categorical,
        },
    )
    _write_outputs(model, report, Path(args.out))
    print(_summary_line(report))
    return 0


def _records_as_of(directory: Path, override: str | None) -> dt.date:
    if override:
        try:
            return dt.date.fromisoformat(override)
        except ValueError:
            raise CLIError(f"--as-of {override!r} is not a YYYY-MM-DD date") from None
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        raise CLIError(f"{meta_path}: missing (it gives as_of); or pass --as-of YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(json.loads(meta_path.read_text(encoding="utf-8"))["as_of"])
    except (KeyError, ValueError, TypeError) as exc:
        raise CLIError(f"{meta_path}: no valid 'as_of' date ({exc})") from None


def records_features(
    directory: Path, as_of_override: str | None = None
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dt.date]:
    """Feature frame (index ``uscc``) built by :func:`ml.features.build_features`."""
    from ml.features import build_features
    from ml.tabular import read_records

    tables = read_records(directory)
    as_of = _records_as_of(directory, as_of_override)
    features = build_features({k: v for k, v in tables.items() if k != "truth"}, as_of)
    return features, tables, as_of


def _segments(enterprises: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    ent = enterprises.drop_duplicates("uscc").set_index("uscc").reindex(index)
    out = pd.DataFrame(index=index)
    if "industry_code" in ent:
        out["industry"] = ent["industry_code"].astype(str).str[:1]
    if "region_code" in ent:
        out["region"] = ent["region_code"].astype(str).str[:4]
    if "size_class" in ent:
        out["size_class"] = ent["size_class"].astype(str)
    return out.reset_index(drop=True)


def cmd_train_records(args: argparse.Namespace) -> int:
    from ml.artifacts import spec_dicts
    from ml.features import FEATURE_SPECS

    records = Path(args.records)
    features, tables, as_of = records_features(records, args.as_of)
    truth = tables.get("truth")
    if truth is None:
        raise CLIError(f"{records}: no truth.csv with labels (uscc,defaulted)")
    if not {"uscc", "defaulted"} <= set(truth.columns):
        raise CLIError(f"{records}/truth.csv: needs columns uscc and defaulted")
    labels = truth.drop_duplicates("uscc").set_index("uscc")["defaulted"].reindex(features.index)
    if labels.isna().any():
        missing = labels.index[labels.isna()][0]
        raise CLIError(f"{records}/truth.csv: no label for enterprise {missing} (and maybe others)")
    y = labels.to_numpy(dtype=np.int64)
    if y.min() == y.max():
        raise CLIError(f"{records}/truth.csv: column 'defaulted' has a single class")
    monotone = {s.name: s.risk_direction for s in FEATURE_SPECS if s.risk_direction}
    estimator = make_estimator(args.model, monotone=monotone, seed=args.seed)
    X = features.reset_index(drop=True)
    model, report = fit_and_report(
        estimator,
        X,
        y,
        seed=args.seed,
        specs=spec_dicts(FEATURE_SPECS),
        monotone=monotone,
        segments=_segments(tables["enterprises"], features.index),
        extra={"source": str(records), "as_of": as_of.isoformat()},
        with_cv=args.cv,
    )
    _write_outputs(model, report, Path(args.out))
    print(_summary_line(report))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score a records directory (``uscc`` key) or, with ``--table``, any CSV with the
    columns a ``train --table`` model was trained on (other columns are ignored)."""
    from ml.artifacts import default_model_root, load_model
    from ml.tabular import table_features

    model_path = Path(args.model)
    base = Path(args.trusted_base) if args.trusted_base else default_model_root(model_path)
    if (args.records is None) == (args.table is None):
        raise CLIError("give exactly one of --records DIR or --table FILE.csv")
    if args.records is not None:
        features, _tables, _as_of = records_features(Path(args.records), args.as_of)
        model = load_model(model_path, trusted_base=base, expected_features=list(features.columns))
        key_name, keys = "uscc", features.index.to_numpy()
    else:
        model = load_model(model_path, trusted_base=base)
        features, keys = table_features(args.table, model.feature_names, args.id)
        key_name = args.id or "row"
    table = model.score_table(features)
    table.insert(0, key_name, keys)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.6g")
    counts = table["grade"].value_counts().to_dict()
    print(json.dumps({"scored": len(table), "out": str(out), "grades": counts}, ensure_ascii=False))
    return 0


def cmd_synth(argv: Sequence[str]) -> int:
    from ml import synth

    return int(synth.main(list(argv)) or 0)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description="Xinyidai risk-model library")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "synth", help="generate a synthetic population (see python -m ml synth -h)", add_help=False
    )

    train = sub.add_parser(
        "train",
        help="train on any CSV table",
        description=(
            "Train on any CSV. Constant or all-missing columns are dropped with a warning; "
            "rows with a missing target are dropped with a warning; a numeric column with "
            "non-numeric text is an error naming the column and line."
        ),
    )
    train.add_argument("--table", required=True, metavar="FILE.csv")
    train.add_argument("--target", required=True, metavar="COL")
    train.add_argument(
        "--positive", metavar="VALUE", help="target value that means default (default: 1)"
    )
    train.add_argument("--model", required=True, choices=("scorecard", "gbm"))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, metavar="DIR")
    train.add_argument(
        "--monotone",
        action="append",
        metavar="COL=ascending|descending",
        help="constrain the event rate to rise (ascending) or fall with COL; repeatable",
    )
    train.set_defaults(func=cmd_train)

    rec = sub.add_parser("train-records", help="train from synth-shaped records via ml.features")
    rec.add_argument("--records", required=True, metavar="DIR")
    rec.add_argument("--model", required=True, choices=("scorecard", "gbm"))
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--out", required=True, metavar="DIR2")
    rec.add_argument("--as-of", help="observation date (default: DIR/meta.json as_of)")
    rec.add_argument("--cv", action="store_true", help="also report 5-fold CV AUC")
    rec.set_defaults(func=cmd_train_records)

    score = sub.add_parser(
        "score", help="score every enterprise of a records directory (or rows of a CSV)"
    )
    score.add_argument("--model", required=True, metavar="DIR2")
    score.add_argument("--records", metavar="DIR", help="synth-shaped records directory")
    score.add_argument("--table", metavar="FILE.csv", help="a CSV for a train --table model")
    score.add_argument("--id", metavar="COL", help="with --table: key column to copy (else row)")
    score.add_argument("--out", required=True, metavar="scores.csv")
    score.add_argument("--as-of", help="observation date (default: DIR/meta.json as_of)")
    score.add_argument(
        "--trusted-base",
        help="directory models may be loaded from (default: $ML_MODEL_ROOT, else the model dir)",
    )
    score.set_defaults(func=cmd_score)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from ml.artifacts import ArtifactError
    from ml.grades import GradeTableError
    from ml.schema import SchemaError
    from ml.tabular import FeatureSetError, TableError

    return (CLIError, TableError, FeatureSetError, ArtifactError, SchemaError, GradeTableError)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["synth"]:
        return cmd_synth(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except _user_errors() as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, OSError) as exc:
        if os.environ.get("ML_DEBUG"):
            traceback.print_exc()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
