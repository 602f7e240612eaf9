"""Benchmark and calibration check for ``ml.synth``.

Prints JSON lines ``{"name", "value", "unit", "n"}``:

* wall time of :func:`ml.synth.generate` and of writing CSV for ``--enterprises`` (100k by
  default; the issue asks for minutes, not hours);
* default rate and oracle AUC (true PD vs realized default) for ``--seeds`` at ``--calib-n``
  (targets: 3–6 % and 0.78–0.90);
* observability: a plain LightGBM trained on ``ml.features`` of one seed and tested on another
  seed, as a share of that seed's oracle AUC (how close a real model can get).

    .venv/bin/python bench/ml_synth.py [--enterprises 100000] [--seeds 1 2 3] [--calib-n 20000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ml import features, synth


def _emit(name: str, value: float, unit: str, n: int) -> None:
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit, "n": n}), flush=True)


def _observability(n: int, train_seed: int, test_seed: int) -> None:
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    data = []
    for seed, size in ((train_seed, 3 * n), (test_seed, n)):
        tables = synth.generate(size, seed)
        truth = tables.pop("truth").set_index("uscc")
        frame = features.build_features(tables, synth.DEFAULT_AS_OF)
        data.append((frame, truth.loc[frame.index]))
    (x_train, t_train), (x_test, t_test) = data
    model = lgb.LGBMClassifier(
        n_estimators=400,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=50,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        verbose=-1,
    )
    model.fit(x_train, t_train["defaulted"])
    y = t_test["defaulted"].to_numpy()
    gbm_auc = roc_auc_score(y, model.predict_proba(x_test)[:, 1])
    oracle = roc_auc_score(y, t_test["true_pd"].to_numpy())
    _emit("ml_synth.observability.gbm_auc", gbm_auc, "auc", n)
    _emit("ml_synth.observability.oracle_auc", oracle, "auc", n)
    _emit("ml_synth.observability.ratio", gbm_auc / oracle, "ratio", n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--enterprises", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--calib-n", type=int, default=20_000)
    parser.add_argument("--skip-observability", action="store_true")
    args = parser.parse_args()
    n = args.enterprises

    started = time.perf_counter()
    tables = synth.generate(n, seed=1)
    _emit("ml_synth.generate", time.perf_counter() - started, "s", n)
    rows = sum(len(frame) for frame in tables.values())
    _emit("ml_synth.rows", rows, "rows", n)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = synth.write(tables, Path(tmp), "csv")
        _emit("ml_synth.write_csv", time.perf_counter() - started, "s", n)
        _emit("ml_synth.csv_bytes", sum(p.stat().st_size for p in paths), "bytes", n)
    del tables

    rates, aucs = [], []
    for seed in args.seeds:
        stats = synth.summary(synth.generate(args.calib_n, seed))
        rates.append(stats["default_rate"])
        aucs.append(stats["oracle_auc"])
        _emit(f"ml_synth.seed{seed}.default_rate", stats["default_rate"], "share", args.calib_n)
        _emit(f"ml_synth.seed{seed}.oracle_auc", stats["oracle_auc"], "auc", args.calib_n)
    _emit("ml_synth.default_rate.mean", float(np.mean(rates)), "share", args.calib_n)
    _emit("ml_synth.oracle_auc.mean", float(np.mean(aucs)), "auc", args.calib_n)

    if not args.skip_observability:
        _observability(args.calib_n, train_seed=101, test_seed=102)


if __name__ == "__main__":
    main()
