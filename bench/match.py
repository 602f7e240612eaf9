"""Matching benchmark: all enterprises × all products, and one enterprise explained.

Prints JSON lines {"name", "value", "unit", "baseline", "ratio", "n"}. The facts and rules
are random but shaped like the real ones (grades, classes, industry/region code lists).

    python bench/match.py [--enterprises 100000] [--products 1000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from app.services.matching_engine import (
    PUBLIC_CLASSES,
    SIZE_CLASSES,
    EnterpriseFacts,
    ProductRules,
    bitmask,
    eligibility,
    evaluate,
    prepare,
)
from models.authorization import SCOPES

INDUSTRIES = ["C13", "C14", "C18", "C33", "C39", "F51", "F52", "I65", "E47", "G54", "H62", "M74"]
REGIONS = ["350102", "350103", "350104", "350111", "440305", "440106", "110105", "330106"]


def population(n: int, rng: np.random.Generator) -> EnterpriseFacts:
    return EnterpriseFacts(
        ids=np.arange(n),
        grade_rank=np.where(rng.random(n) < 0.9, rng.integers(0, 9, n), np.nan).astype(float),
        public_class=rng.choice([0, 0, 0, 1, 1, 2, 3, -1], n),
        years_operating=rng.uniform(0, 25, n),
        annual_sales=np.where(rng.random(n) < 0.8, rng.lognormal(15, 1.2, n), np.nan),
        tax_months=np.where(rng.random(n) < 0.8, rng.integers(0, 37, n), np.nan).astype(float),
        social_months=np.where(rng.random(n) < 0.7, rng.integers(0, 37, n), np.nan).astype(float),
        industry=list(rng.choice(INDUSTRIES, n)),
        region=list(rng.choice(REGIONS, n)),
        size_class=rng.integers(0, 4, n),
        scopes_mask=rng.integers(0, 16, n),
    )


def products(p: int, rng: np.random.Generator) -> ProductRules:
    def maybe(prob: float, values: np.ndarray) -> np.ndarray:
        return np.where(rng.random(p) < prob, values, math.nan).astype(float)

    def codes(prob: float, pool: list[str], k: int) -> list[list[str]]:
        return [
            list(rng.choice(pool, k, replace=False)) if rng.random() < prob else []
            for _ in range(p)
        ]

    return ProductRules(
        ids=np.arange(p),
        min_grade_rank=maybe(0.85, rng.integers(2, 7, p)),
        public_mask=rng.choice(
            [0, bitmask("AB", PUBLIC_CLASSES), bitmask("ABC", PUBLIC_CLASSES)], p
        ),
        min_years=maybe(0.6, rng.choice([1.0, 2.0, 3.0], p)),
        min_sales=maybe(0.5, rng.choice([5e5, 1e6, 5e6], p)),
        min_tax_months=maybe(0.5, rng.choice([6.0, 12.0, 24.0], p)),
        min_social_months=maybe(0.3, rng.choice([6.0, 12.0], p)),
        industries_allowed=codes(0.3, ["C", "F51", "I65", "G", "E"], 2),
        industries_excluded=codes(0.1, ["C25", "C31", "K70"], 1),
        regions_allowed=codes(0.4, ["35", "3501", "44", "4403", "11"], 2),
        regions_excluded=codes(0.05, ["350111"], 1),
        size_mask=rng.choice(
            [0, bitmask(["micro", "small"], SIZE_CLASSES), bitmask(SIZE_CLASSES[:3], SIZE_CLASSES)],
            p,
        ),
        scopes_mask=rng.choice(
            [0, bitmask(["tax"], SCOPES), bitmask(["tax", "social_insurance"], SCOPES)], p
        ),
    )


def emit(name: str, value: float, unit: str, n: str, baseline: float | None = None) -> None:
    ratio = None if baseline is None or value == 0 else round(baseline / value, 3)
    print(
        json.dumps(
            {
                "name": name,
                "value": round(value, 3),
                "unit": unit,
                "baseline": baseline,
                "ratio": ratio,
                "n": n,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enterprises", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    facts, rules = population(args.enterprises, rng), products(args.products, rng)

    start = time.perf_counter()
    eligible = eligibility(facts, rules)
    full = time.perf_counter() - start
    emit("match_full_s", full, "s", f"{args.enterprises}x{args.products}")
    print(
        json.dumps(
            {
                "name": "match_eligible_share",
                "value": round(float(eligible.mean()), 4),
                "unit": "share",
                "n": f"{args.enterprises}x{args.products}",
            }
        )
    )

    timings = []
    for i in range(args.repeat):
        one = facts.take(slice(i, i + 1))
        t0 = time.perf_counter()
        passed = evaluate(one, rules, prepare(one, rules))
        _ = np.flatnonzero(~passed[0].all(axis=1))  # which products fail, for the explanation
        timings.append((time.perf_counter() - t0) * 1000)
    emit("match_one_ms", float(np.percentile(timings, 95)), "ms p95", f"1x{args.products}")
    emit("match_one_p50_ms", float(np.percentile(timings, 50)), "ms p50", f"1x{args.products}")


if __name__ == "__main__":
    main()
