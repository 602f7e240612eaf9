"""Scorecard throughput: batch rows/s from a feature matrix, and single-decision latency.

Trains a scorecard on a synthetic population (``ml.synth`` → ``ml.features``), then

* batch: scores an ``n``-row float matrix (rows resampled from the population; column-major,
  and as a row-major array as most callers hold it) with ``Scorecard.score_matrix`` — one
  ``np.searchsorted`` + gather per feature — versus a numpy dot product ``X @ w`` on the same
  matrix (the floor for any linear model; NaN-free copy);
* single: ``RiskModel.decide(row)`` (score, grade, ≤4+1 reasons, counterfactual) per row,
  p50/p95 latency over distinct enterprises.

Prints JSON lines ``{"name","value","unit","baseline","ratio","n"}``.
Usage: ``python bench/ml_throughput.py [--enterprises 20000] [--rows 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ml import synth
from ml.artifacts import RiskModel, spec_dicts
from ml.features import FEATURE_SPECS, build_features
from ml.grades import load_grade_scale
from ml.scorecard import Scorecard
from ml.validation import reference_profile


def emit(name: str, value: float, unit: str, baseline: float | None, n: int) -> None:
    ratio = None if not baseline else value / baseline
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit,
                      "baseline": None if baseline is None else round(baseline, 4),
                      "ratio": None if ratio is None else round(ratio, 4), "n": n}))  # fmt: skip


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enterprises", type=int, default=20000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    tables = synth.generate(args.enterprises, args.seed)
    truth = tables.pop("truth")
    features = build_features(tables, synth.DEFAULT_AS_OF)
    y = truth.set_index("uscc")["defaulted"].reindex(features.index).to_numpy()
    monotone = {s.name: s.risk_direction for s in FEATURE_SPECS if s.risk_direction}
    X = features.reset_index(drop=True)
    model = Scorecard(monotone=monotone).fit(X, y)
    risk = RiskModel(model, load_grade_scale(), spec_dicts(FEATURE_SPECS),
                     reference_profile(X, model.credit_score(X)))  # fmt: skip

    rng = np.random.default_rng(0)
    big = X.to_numpy(dtype=np.float64)[rng.integers(0, len(X), args.rows)]
    big_f = np.asfortranarray(big)
    w = rng.normal(size=big.shape[1])
    dense = np.nan_to_num(big)
    t_score = best_of(lambda: model.score_matrix(big_f))
    t_score_c = best_of(lambda: model.score_matrix(big))
    t_dot = best_of(lambda: dense @ w)
    sample = X.iloc[:1000]
    assert np.allclose(
        model.score_matrix(sample.to_numpy(dtype=np.float64)), model.credit_score(sample)
    )
    emit("scorecard_batch_rows_per_s", args.rows / t_score, "rows/s", args.rows / t_dot, args.rows)
    emit(
        "scorecard_batch_rows_per_s_row_major", args.rows / t_score_c, "rows/s",
        args.rows / t_dot, args.rows,
    )  # fmt: skip
    emit("scorecard_batch_features", float(big.shape[1]), "features", None, args.rows)
    emit("scorecard_features_used", float(len(model.used_features_)), "features", None, len(X))

    rows = X.iloc[: args.decisions].to_dict("records")
    for r in rows[:50]:
        risk.decide(r)  # warm caches
    lat = []
    for r in rows:
        t = time.perf_counter()
        risk.decide(r)
        lat.append(time.perf_counter() - t)
    lat_ms = np.array(lat) * 1e3
    reasons_only = []
    for r in rows:
        t = time.perf_counter()
        risk.decide(r, counterfactual=False)
        reasons_only.append(time.perf_counter() - t)
    emit("single_decision_p50_ms", float(np.percentile(lat_ms, 50)), "ms", 1.0, len(rows))
    emit("single_decision_p95_ms", float(np.percentile(lat_ms, 95)), "ms", 1.0, len(rows))
    emit("single_decision_no_counterfactual_p50_ms",
         float(np.percentile(np.array(reasons_only) * 1e3, 50)), "ms", 1.0, len(rows))  # fmt: skip


if __name__ == "__main__":
    main()
