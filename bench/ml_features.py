"""Benchmark ``ml.features.build_features`` on a synthetic population.

Prints JSON lines ``{"name", "value", "unit", "n"}``. Target (issue 3): 100k enterprises × 36
months in under 60 s. Two layouts are timed: the tables as :func:`ml.synth.generate` returns
them (categorical keys) and the same tables with plain string columns, as read from CSV.

    .venv/bin/python bench/ml_features.py [--enterprises 100000] [--months 36] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from ml import features, synth


def _emit(name: str, value: float, unit: str, n: int) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, "n": n}), flush=True)


def _as_strings(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    out = {}
    for name, frame in tables.items():
        frame = frame.copy()
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].astype(str)
        out[name] = frame
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--enterprises", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = args.enterprises

    tables = synth.generate(n, args.seed, args.months)
    tables.pop("truth")
    rows = sum(len(frame) for name, frame in tables.items() if name != "enterprises")
    _emit("ml_features.record_rows", rows, "rows", n)

    started = time.perf_counter()
    frame = features.build_features(tables, synth.DEFAULT_AS_OF)
    elapsed = time.perf_counter() - started
    _emit("ml_features.build_features.categorical", elapsed, "s", n)
    _emit("ml_features.throughput.categorical", rows / elapsed, "records/s", n)
    _emit("ml_features.columns", frame.shape[1], "features", n)

    strings = _as_strings(tables)
    del tables
    started = time.perf_counter()
    features.build_features(strings, synth.DEFAULT_AS_OF)
    elapsed = time.perf_counter() - started
    _emit("ml_features.build_features.strings", elapsed, "s", n)
    _emit("ml_features.throughput.strings", rows / elapsed, "records/s", n)

    started = time.perf_counter()
    features.coverage(strings, synth.DEFAULT_AS_OF)
    _emit("ml_features.coverage.strings", time.perf_counter() - started, "s", n)


if __name__ == "__main__":
    main()
