"""The benchmark suite: ``python bench/run.py [--quick|--full]``.

Prints one JSON object per line, ``{"name", "value", "unit", "baseline", "ratio", "n"}``; each
figure is measured side by side with its baseline in the same run (a noisy machine moves
both). ``ratio`` is value / baseline (for latencies: how many times the baseline's).

========================== ======================================= ==========================
name                       what                                    baseline (same run)
========================== ======================================= ==========================
ingest_rows_per_s          ``ingestion.ingest_rows`` into PostgreSQL raw psycopg COPY of the rows
features_enterprises_per_s ``ml.features`` over 36 months             —
score_rows_per_s           scorecard batch scoring                 numpy dot, same matrix
decision_ms                one decision (score, grade, reasons,    —
                           counterfactual), p50
match_full_s               all enterprises × all products          —
match_one_ms               one enterprise explained, p95           —
page_rps / page_p50_ms /   the bank's prospect list and an         a bare endpoint in the
page_p95_ms                enterprise profile page, logged in,     same server: one indexed
                           gunicorn + PostgreSQL, 16 clients       SELECT, same row count
pipeline_s (``--full``)    synth → ingest → features → score →     —
                           match, 2 Celery workers
========================== ======================================= ==========================

The first five reuse the single-purpose scripts beside this one (``ingest.py``,
``ml_features.py``, ``ml_throughput.py``, ``match.py``), run as subprocesses with the size of
the mode. The page and pipeline figures build their own PostgreSQL schema in
``BENCH_DATABASE_URL`` (default: the local test database) and drop it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# ``python bench/run.py`` puts bench/ first on the path; the pipeline step imports bench.*.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
BIN = Path(sys.executable).parent
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEMO_PASSWORD = "bench demo password 2026"  # noqa: S105  (a throwaway schema)

SIZES: dict[str, dict[str, Any]] = {
    "quick": {
        "ingest_rows": 50_000,
        "features_enterprises": 5_000,
        "score_enterprises": 3_000,
        "score_rows": 200_000,
        "decisions": 500,
        "match_enterprises": 20_000,
        "match_products": 200,
        "page_enterprises": 60,
        "page_seconds": 8,
        "pipeline_enterprises": 0,
    },
    "full": {
        "ingest_rows": 500_000,
        "features_enterprises": 100_000,
        "score_enterprises": 20_000,
        "score_rows": 1_000_000,
        "decisions": 2_000,
        "match_enterprises": 100_000,
        "match_products": 1_000,
        "page_enterprises": 600,
        "page_seconds": 30,
        "pipeline_enterprises": 100_000,
    },
}


def emit(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    n: int | str,
    *,
    inverse: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    ratio = None
    if baseline:
        ratio = round((baseline / value if inverse else value / baseline), 4) if value else None
    line = {
        "name": name,
        "value": round(float(value), 4),
        "unit": unit,
        "baseline": None if baseline is None else round(float(baseline), 4),
        "ratio": ratio,
        "n": n,
        **extra,
    }
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return line


def script(name: str, *args: str) -> dict[str, dict[str, Any]]:
    """Run ``bench/<name>`` and return its JSON lines by name."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(  # noqa: S603
        [PYTHON, str(ROOT / "bench" / name), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench/{name} failed:\n{done.stderr[-3000:]}")
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    return {line["name"]: line for line in lines}


# The figures of the single-purpose scripts ---------------------------------------------------
def ingest(size: dict[str, Any]) -> None:
    got = script("ingest.py", "--rows", str(size["ingest_rows"]))["ingest_rows_per_s"]
    emit("ingest_rows_per_s", got["value"], "rows/s", got["baseline"], got["n"],
         runs=got["runs"], ratio_median=got["ratio_median"])  # fmt: skip


def features(size: dict[str, Any]) -> None:
    n = size["features_enterprises"]
    got = script("ml_features.py", "--enterprises", str(n), "--months", "36")
    seconds = got["ml_features.build_features.categorical"]["value"]
    emit("features_enterprises_per_s", n / seconds, "enterprises/s", None, n, seconds=seconds)


def scoring(size: dict[str, Any]) -> None:
    got = script(
        "ml_throughput.py",
        "--enterprises", str(size["score_enterprises"]),
        "--rows", str(size["score_rows"]),
        "--decisions", str(size["decisions"]),
    )  # fmt: skip
    batch = got["scorecard_batch_rows_per_s"]
    emit("score_rows_per_s", batch["value"], "rows/s", batch["baseline"], batch["n"])
    one = got["single_decision_p50_ms"]
    emit("decision_ms", one["value"], "ms p50", None, one["n"])


def matching(size: dict[str, Any]) -> None:
    got = script(
        "match.py",
        "--enterprises", str(size["match_enterprises"]),
        "--products", str(size["match_products"]),
        "--repeat", "200",
    )  # fmt: skip
    full, one = got["match_full_s"], got["match_one_ms"]
    emit("match_full_s", full["value"], "s", None, full["n"])
    emit("match_one_ms", one["value"], "ms p95", None, one["n"])


# A PostgreSQL schema of its own --------------------------------------------------------------
@contextmanager
def bench_schema() -> Iterator[dict[str, str]]:
    """A fresh schema in the bench database; yields the environment the app's processes need
    (``PGOPTIONS`` puts them on the schema). Dropped at the end."""
    import sqlalchemy as sa

    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL
    schema = f"xyd_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, pool_pre_ping=True)  # the fault runs restart the server
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    instance = Path(f"/tmp/{schema}")  # noqa: S108
    instance.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "PGOPTIONS": f"-c search_path={schema}",
        "XINYIDAI_ENV": "development",  # plain-HTTP cookies for the local clients
        "XINYIDAI_INSTANCE_PATH": str(instance),
        "SECRET_KEY": secrets.token_hex(32),
        "RATELIMIT_ENABLED": "0",
        "XINYIDAI_DEMO_PASSWORD": DEMO_PASSWORD,
    }
    try:
        yield env
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
        shutil.rmtree(instance, ignore_errors=True)


def flask(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603
        [str(BIN / "flask"), "--app", "wsgi", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    server_env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_ACCESSLOG": "/dev/null"}
    proc = subprocess.Popen(  # noqa: S603
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "bench.page_app:app"],
        env=server_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # workers still draining keep-alive clients
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def logged_in(base: str, email: str) -> Any:
    import re

    import httpx

    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/auth/login").text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    response = client.post(
        "/auth/login",
        data={"email": email, "password": DEMO_PASSWORD, "csrf_token": token.group(1)},
    )
    assert response.status_code == 302, response.text[:300]
    return client


def load(clients: list[Any], paths: list[str], seconds: float) -> tuple[float, list[float], int]:
    """Every client GETs the paths in turn for ``seconds``; (requests/s, latencies ms, errors).

    Requests/s counts the answers received within the ``seconds`` (not the ones still coming
    in after, while fewer clients are left waiting), so slower pages are not charged their
    tail."""
    latencies: list[list[float]] = [[] for _ in clients]
    in_time = [0] * len(clients)
    errors = [0] * len(clients)
    started = time.monotonic()
    stop = started + seconds

    def worker(i: int) -> None:
        k = i
        while time.monotonic() < stop:
            path = paths[k % len(paths)]
            k += 1
            t0 = time.perf_counter()
            response = clients[i].get(path)
            latencies[i].append((time.perf_counter() - t0) * 1000)
            if time.monotonic() <= stop:
                in_time[i] += 1
            if response.status_code != 200:
                errors[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [x for part in latencies for x in part]
    return sum(in_time) / seconds, flat, sum(errors)


def pooled(parts: list[tuple[float, list[float], int]]) -> tuple[float, list[float], int]:
    """Rounds of :func:`load` of equal length as one: mean requests/s, all latencies, errors."""
    return (
        sum(rps for rps, _, _ in parts) / len(parts),
        [x for _, ms, _ in parts for x in ms],
        sum(errors for _, _, errors in parts),
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


PAGE_ROUNDS = 3


def alternating(
    clients: list[Any], baseline: list[str], paths: list[str], seconds: float
) -> tuple[tuple[float, list[float], int], tuple[float, list[float], int]]:
    """The baseline's paths and the pages', in turn, PAGE_ROUNDS windows of ``seconds`` each
    (this machine drifts by a third from one minute to the next): each side :func:`pooled`
    over its rounds."""
    base_parts, page_parts = [], []
    for _ in range(PAGE_ROUNDS):
        base_parts.append(load(clients, baseline, seconds))
        page_parts.append(load(clients, paths, seconds))
    return pooled(base_parts), pooled(page_parts)


def table_rows(html: str) -> int:
    """The table rows a page renders (its ``<tr>`` outside a ``<thead>``), at least one: the
    bare endpoint renders as many for the page's baseline."""
    rows = len(re.findall(r"<tr[\s>]", html)) - len(re.findall(r"<thead>\s*<tr[\s>]", html))
    return max(1, rows)


def pages(size: dict[str, Any], concurrency: int = 16) -> None:
    n = size["page_enterprises"]
    with bench_schema() as env:
        flask(env, "db", "upgrade")
        seed_env = {**env}
        flask(seed_env, "seed-demo", "--enterprises", str(n))
        with gunicorn(env) as base:
            clients = [logged_in(base, "bank@demo.test") for _ in range(concurrency)]
            listing = clients[0].get("/bank/prospects").text
            # The first page of the list, in its order (those qualifying for most products
            # first): the profiles are the first 8 an officer would open.
            ids = list(dict.fromkeys(re.findall(r"/bank/enterprises/(\d+)", listing)))
            assert ids, "the demo bank sees no prospect"
            rows = len(ids)
            counts = re.search(r'data-testid="prospect-counts">\D*(\d+)', listing)
            shared = int(counts.group(1)) if counts else rows
            page_paths = ["/bank/prospects", *(f"/bank/enterprises/{i}" for i in ids[:8])]
            # Each page's baseline: the bare endpoint rendering as many table rows as that
            # page does (the list its 50 prospects; a profile its shared records, none when
            # it shares none), in the same order, so the baseline's mix is the pages' mix.
            bare_paths = [f"/bench/bare?n={table_rows(clients[0].get(p).text)}" for p in page_paths]
            # Warm every gunicorn worker (templates, compiled statements, prepared
            # statements): all the clients on every path, so each worker serves some, for a
            # few seconds before anything is measured.
            load(clients, [*page_paths, *bare_paths], max(2.0, size["page_seconds"] / 4))
            seconds = size["page_seconds"]
            (bare_rps, bare_ms, _), (rps, ms, errors) = alternating(
                clients, bare_paths, page_paths, seconds / PAGE_ROUNDS
            )
            counts_shown = ", ".join(path.split("=")[1] for path in bare_paths)
            label = (
                f"{n} enterprises, {rows} of {shared} prospects shown, {concurrency} clients; "
                f"table rows per page {counts_shown}"
            )
            emit("page_rps", rps, "requests/s", bare_rps, label, errors=errors)
            emit("page_p50_ms", pct(ms, 50), "ms", pct(bare_ms, 50), label, inverse=True)
            emit("page_p95_ms", pct(ms, 95), "ms", pct(bare_ms, 95), label, inverse=True)
            for name, paths, baseline in (
                ("page_prospects", page_paths[:1], bare_paths[:1]),
                ("page_profile", page_paths[1:], bare_paths[1:]),
            ):
                # Each alone against its own rows' baseline, alternating as the mix does (a
                # window of 2 s at least: a shorter one undercounts the slower pages).
                (own_rps, own_ms, _), (one_rps, one_ms, _) = alternating(
                    clients, baseline, paths, max(2.0, seconds / 2 / PAGE_ROUNDS)
                )
                emit(f"{name}_rps", one_rps, "requests/s", own_rps, label)
                emit(f"{name}_p95_ms", pct(one_ms, 95), "ms", pct(own_ms, 95), label, inverse=True)
            # One client alone: the latency of the page itself, with no request queued behind
            # another (with 16 clients on 2 cores, p50 ≈ 16 / throughput is mostly waiting).
            solo = f"{n} enterprises, {rows} of {shared} prospects shown, 1 client"
            _, bare_solo, _ = load(clients[:1], bare_paths, max(2.0, seconds / 2))
            _, page_solo, _ = load(clients[:1], page_paths, max(2.0, seconds / 2))
            emit("page_solo_p50_ms", pct(page_solo, 50), "ms", pct(bare_solo, 50), solo,
                 inverse=True)  # fmt: skip
            emit("page_solo_p95_ms", pct(page_solo, 95), "ms", pct(bare_solo, 95), solo,
                 inverse=True)  # fmt: skip
            for client in clients:
                client.close()


# --full: the pipeline on Celery ----------------------------------------------------------------
def pipeline(size: dict[str, Any]) -> None:
    from bench.pipeline import run_pipeline

    n = size["pipeline_enterprises"]
    with bench_schema() as env:
        seconds, steps = run_pipeline(env, n, workers=2)
        emit("pipeline_s", seconds, "s", None, n, steps=steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode")
    mode.add_argument("--full", action="store_const", const="full", dest="mode")
    parser.add_argument(
        "--only", nargs="*", default=None, help="ingest features scoring matching pages pipeline"
    )
    parser.add_argument("--pipeline-enterprises", type=int, default=None)
    args = parser.parse_args()
    size = dict(SIZES[args.mode or "quick"])
    if args.pipeline_enterprises:
        size["pipeline_enterprises"] = args.pipeline_enterprises
    steps: dict[str, Callable[[dict[str, Any]], None]] = {
        "ingest": ingest,
        "features": features,
        "scoring": scoring,
        "matching": matching,
        "pages": pages,
    }
    if args.mode == "full" or (args.only and "pipeline" in args.only):
        steps["pipeline"] = pipeline
    for name, step in steps.items():
        if args.only is None or name in args.only:
            step(size)


if __name__ == "__main__":
    main()
