"""Model quality against the known truth of the synthetic population.

Trains each model on a population generated with ``--train-seed`` and evaluates it on a
population from ``--test-seed`` (never seen): AUC vs the oracle AUC (true PD vs realized default
on the same evaluation population; goal ratio ≥ 0.98) and ECE (goal ≤ 0.01), plus Brier, KS
and the AUC of the model PD against the *true* PD's ranking is implicit in the ratio.

Prints JSON lines ``{"name","value","unit","baseline","ratio","n"}``.
Usage: ``python bench/ml_quality.py [--train 100000] [--test 50000] [--models scorecard,gbm]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ml import synth
from ml.cli import make_estimator
from ml.features import FEATURE_SPECS, build_features
from ml.validation import metrics


def emit(name: str, value: float, unit: str, baseline: float | None, n: int) -> None:
    ratio = None if not baseline else value / baseline
    record = {
        "name": name,
        "value": round(value, 5),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 5),
        "ratio": None if ratio is None else round(ratio, 4),
        "n": n,
    }
    print(json.dumps(record), flush=True)


def population(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    tables = synth.generate(n, seed)
    truth = tables.pop("truth").set_index("uscc")
    features = build_features(tables, synth.DEFAULT_AS_OF)
    truth = truth.reindex(features.index)
    return (
        features.reset_index(drop=True),
        truth["defaulted"].to_numpy(dtype=np.int64),
        truth["true_pd"].to_numpy(dtype=np.float64),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=100_000)
    parser.add_argument("--test", type=int, default=50_000)
    parser.add_argument("--train-seed", type=int, default=101)
    parser.add_argument("--test-seed", type=int, default=202)
    parser.add_argument("--models", default="scorecard,gbm")
    args = parser.parse_args()

    X_tr, y_tr, _ = population(args.train, args.train_seed)
    X_te, y_te, pd_true = population(args.test, args.test_seed)
    oracle = roc_auc_score(y_te, pd_true)
    oracle_ece = metrics(y_te, pd_true)["ece"]
    emit("oracle_auc", oracle, "auc", None, len(y_te))
    emit("oracle_ece", oracle_ece, "ece", None, len(y_te))
    emit("train_default_rate", float(y_tr.mean()), "rate", None, len(y_tr))
    monotone = {s.name: s.risk_direction for s in FEATURE_SPECS if s.risk_direction}
    for kind in args.models.split(","):
        est = make_estimator(kind, monotone=monotone, seed=0)
        started = time.perf_counter()
        est.fit(X_tr, y_tr)
        fit_s = time.perf_counter() - started
        p = est.predict_proba(X_te)[:, 1]
        m = metrics(y_te, p)
        emit(f"{kind}_auc_vs_oracle", m["auc"], "auc", oracle, len(y_te))
        emit(f"{kind}_ece", m["ece"], "ece", 0.01, len(y_te))
        emit(f"{kind}_brier", m["brier"], "brier", metrics(y_te, pd_true)["brier"], len(y_te))
        emit(f"{kind}_ks", m["ks"], "ks", metrics(y_te, pd_true)["ks"], len(y_te))
        emit(
            f"{kind}_mean_pd_vs_default_rate",
            float(p.mean()),
            "rate",
            float(y_te.mean()),
            len(y_te),
        )
        rho = float(pd.Series(p).corr(pd.Series(pd_true), method="spearman"))
        emit(f"{kind}_spearman_vs_true_pd", rho, "spearman", None, len(y_te))
        emit(f"{kind}_fit_seconds", fit_s, "s", None, len(y_tr))


if __name__ == "__main__":
    main()
