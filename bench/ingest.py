"""Ingestion throughput on PostgreSQL: the real ``ingest_rows`` path versus a raw COPY.

Builds its own schema (through the migrations) in the PostgreSQL database named by
``BENCH_DATABASE_URL`` (else ``TEST_DATABASE_URL``, else the local test database), with
``rows / 48`` enterprises, each with a live collection grant for tax, and tax rows for two
tax types over the last 24 months. Then, in the same run:

* ``ingest_rows_per_s``: ``app.services.ingestion.ingest_rows`` end to end (validation,
  grant check, version lookup, COPY, rejected rows, audit events, the profile-recompute job
  sent to Celery on a private Redis as production sends it, commit) into ``tax``;
* ``ingest_duplicates_rows_per_s``: the same rows again under a new idempotency key (every
  row a duplicate: the version lookup path, nothing written);
* baseline for both: psycopg ``COPY`` of the same rows, already typed, into a scratch table
  identical to ``tax`` (same columns, constraints, indexes and reference-check triggers),
  in COPY's binary format — the format ``ingest_rows`` sends records in (since the night of
  7 Dec; before, both were text). The text-format COPY of the same rows is measured in
  the same repetitions: ``copy_text_rows_per_s`` and ``ratio_to_text_copy`` (the line's
  extra fields; ``runs`` lists ingest, binary COPY, text COPY per repetition);
  ``copy_unchecked_rows_per_s`` is the binary COPY into a table without the reference
  checks, what the database costs without them.

This machine's timings wander by half from one second to the next (a shared virtual
machine), so the set is measured ``--repeat`` times (3), alternating, each time on fresh
enterprises, after a warm-up batch (the first batch of a process also loads the Celery
transport); the figures are the medians of the repetitions and ``runs`` lists each set.

Prints JSON lines ``{"name","value","unit","baseline","ratio","n"}``; drops its schema at the end.
Usage: ``python bench/ingest.py [--rows 200000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from app.extensions import db
from app.services import accounts, ingestion, workdays
from models import OrgKind, Role
from models.codes import uscc_check_digit

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MONTHS = 24
TAX_TYPES = ("VAT", "CIT")


def emit(name: str, value: float, baseline: float, n: int, **extra: Any) -> None:
    print(
        json.dumps(
            {
                "name": name,
                "value": round(value, 1),
                "unit": "rows/s",
                "baseline": round(baseline, 1),
                "ratio": round(value / baseline, 4),
                "n": n,
                **extra,
            }
        ),
        flush=True,
    )


def bench_uscc(index: int) -> str:
    body = f"91350100{index:09d}"
    return body + uscc_check_digit(body)


def months_back(today: dt.date, count: int) -> list[str]:
    index = today.year * 12 + today.month - 1
    return [f"{(index - k) // 12}-{(index - k) % 12 + 1:02d}" for k in range(count, 0, -1)]


def setup(n_enterprises: int, now: dt.datetime) -> dict[str, int]:
    """Enterprises (one organization each) and a collection grant for tax each, in bulk."""
    office = accounts.create_organization(None, OrgKind.OFFICE, "bench office")
    user, _ = accounts.create_user(
        None, office, "bench@example.com", "bench", Role.ADMIN, secrets.token_hex(16)
    )
    db.session.flush()
    conn = db.session.connection()
    conn.execute(
        sa.text(
            "INSERT INTO organization (kind, name, is_active, created_at) "
            "SELECT 'enterprise', 'bench enterprise ' || g, true, :now "
            "FROM generate_series(1, :n) AS g"
        ),
        {"n": n_enterprises, "now": now},
    )
    org_ids = [
        r[0]
        for r in conn.execute(
            sa.text(
                "SELECT id FROM organization WHERE kind = 'enterprise' AND name LIKE 'bench %' "
                "ORDER BY id"
            )
        )
    ]
    usccs = [bench_uscc(i) for i in range(n_enterprises)]
    conn.execute(
        sa.text(
            "INSERT INTO enterprise (organization_id, uscc, name, legal_representative, "
            "founded_on, region_code, industry_code, employees, annual_revenue, size_class, "
            "created_at) VALUES (:org, :uscc, :name, '林测试', '2015-01-01', '350102', 'C13', "
            "20, 3000000, 'small', :now)"
        ),
        [
            {"org": org, "uscc": uscc, "name": f"bench {uscc}", "now": now}
            for org, uscc in zip(org_ids, usccs, strict=True)
        ],
    )
    ids = dict(conn.execute(sa.text("SELECT uscc, id FROM enterprise")).all())
    index = now.year * 12 + now.month - 1 - MONTHS
    data_from = dt.date(index // 12, index % 12 + 1, 1)
    conn.execute(
        sa.text(
            "INSERT INTO authorization_grant (public_id, enterprise_id, kind, all_banks, scopes, "
            "include_records, purpose, data_from, data_to, data_life_days, fetch_frequency, "
            "valid_from, valid_until, consent_text_version, consent_text_hash, "
            "granted_by_user_id, granted_at, use_count) "
            "SELECT gen_random_uuid()::text, id, 'collection', false, 'tax', false, 'financing', "
            ":data_from, :data_to, 365, 'monthly', :valid_from, :valid_until, 'bench', "
            "repeat('0', 64), :user_id, :valid_from, 0 FROM enterprise"
        ),
        {
            "data_from": data_from,
            "data_to": dt.date(now.year + 1, now.month, 1),
            "valid_from": now - dt.timedelta(days=1),
            "valid_until": now + dt.timedelta(days=300),
            "user_id": user.id,
        },
    )
    db.session.commit()
    # A live platform's tables have planner statistics; fresh bulk inserts do not yet.
    for table in ("organization", "enterprise", "authorization_grant"):
        db.session.execute(sa.text(f"ANALYZE {table}"))
    db.session.commit()
    return {str(k): int(v) for k, v in ids.items()}


def make_rows(n_rows: int, usccs: list[str], today: dt.date) -> list[dict[str, str]]:
    periods = months_back(today, MONTHS)
    rows: list[dict[str, str]] = []
    for uscc in usccs:
        for period in periods:
            for tax_type in TAX_TYPES:
                k = len(rows)
                rows.append(
                    {
                        "uscc": uscc,
                        "period": period,
                        "tax_type": tax_type,
                        "amount_paid": f"{1000 + k % 9000}.{k % 100:02d}",
                        "declared_sales": f"{50000 + k % 70000}",
                        "late_filing": "1" if k % 17 == 0 else "0",
                        "arrears": "0" if k % 11 else f"{k % 500}.50",
                    }
                )
                if len(rows) == n_rows:
                    return rows
    return rows


# The tax table's columns as the baseline COPY sends them, and their types for a binary COPY.
BASELINE_TYPES = ("varchar", "varchar", "varchar", "numeric", "numeric", "bool", "numeric",
                  "int4", "varchar", "int4", "int4", "varchar", "timestamptz")  # fmt: skip


def baseline_copy(
    rows: list[dict[str, str]],
    ids: dict[str, int],
    now: dt.datetime,
    *,
    checked: bool = True,
    binary: bool = True,
) -> float:
    """Seconds for a raw COPY of the same rows into a scratch copy of the tax table (with its
    reference-check trigger, unless ``checked`` is false), in COPY's binary format (as
    ``ingest_rows`` sends records) or, ``binary`` false, its text format."""
    from decimal import Decimal

    conn = db.session.connection()
    conn.execute(sa.text("DROP TABLE IF EXISTS bench_copy"))
    conn.execute(sa.text("CREATE TABLE bench_copy (LIKE tax INCLUDING ALL)"))
    batch_id = conn.execute(
        sa.text(
            "INSERT INTO ingestion_batch (source, provider, idempotency_key, content_hash, "
            "received_at, status, rows_total, accepted, corrected, duplicates, rejected) "
            "VALUES ('tax', 'bench', :key, '', :now, 'completed', 0, 0, 0, 0, 0) RETURNING id"
        ),
        {"key": uuid.uuid4().hex, "now": now},
    ).scalar_one()
    if checked:  # the trigger tax has (migration 0019_record_refs)
        conn.execute(
            sa.text(
                "CREATE TRIGGER bench_copy_references AFTER INSERT ON bench_copy "
                "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                "EXECUTE FUNCTION record_references_check()"
            )
        )
    db.session.commit()
    raw = db.session.connection().connection.driver_connection
    assert raw is not None
    columns = (
        "uscc, period, tax_type, amount_paid, declared_sales, late_filing, arrears, "
        "enterprise_id, provider, batch_id, version, content_hash, received_at"
    )
    statement = f"COPY bench_copy ({columns}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
    start = time.perf_counter()
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        if binary:
            copy.set_types(list(BASELINE_TYPES))
        for row in rows:
            copy.write_row(
                (
                    row["uscc"],
                    row["period"],
                    row["tax_type"],
                    Decimal(row["amount_paid"]),
                    Decimal(row["declared_sales"]),
                    row["late_filing"] == "1",
                    Decimal(row["arrears"]),
                    ids[row["uscc"]],
                    "bench",
                    batch_id,
                    1,
                    "",
                    now,
                )
            )
    db.session.commit()
    seconds = time.perf_counter() - start
    db.session.execute(sa.text("DROP TABLE bench_copy"))
    db.session.commit()
    return seconds


def timed_ingest(rows: list[dict[str, str]], now: dt.datetime) -> tuple[float, Any]:
    start = time.perf_counter()
    batch = ingestion.ingest_rows(
        "tax", rows, provider="bench-tax", idempotency_key=uuid.uuid4().hex, actor=None, now=now
    )
    counts = (batch.accepted, batch.duplicates, batch.corrected, batch.rejected)
    db.session.commit()
    return time.perf_counter() - start, counts


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A Redis of the run's own, the Celery broker the profile-recompute job is sent to."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("bench/ingest.py needs redis-server (make browser-deps installs it)")
    proc = subprocess.Popen(  # noqa: S603
        [server, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with private_redis() as broker:
        run(args.rows, broker, max(1, args.repeat))


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def run(n_rows: int, broker: str, repeat: int = 3) -> None:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL
    schema = f"xyd_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        app = create_app(
            {
                "XINYIDAI_ENV": "testing",
                "SECRET_KEY": secrets.token_hex(32),
                "SQLALCHEMY_DATABASE_URI": url,
                "SQLALCHEMY_ENGINE_OPTIONS": {
                    "connect_args": {"options": f"-csearch_path={schema}"}
                },
                # As production: the recompute job the batch starts goes to Celery (no
                # worker consumes it here); the eager runner would run it inside the timing.
                "JOBS_BACKEND": "celery",
                "CELERY_BROKER_URL": broker,
            }
        )
        with app.app_context():
            flask_migrate.upgrade()
            now = dt.datetime.now(dt.UTC)
            today = workdays.local_date(now)
            per_group = -(-n_rows // (MONTHS * len(TAX_TYPES)))
            ids = setup(per_group * repeat + 1, now)
            usccs = sorted(ids)
            # A warm-up batch on an enterprise of its own, then one group per repetition.
            warm = make_rows(MONTHS, usccs[-1:], today)
            assert timed_ingest(warm, now)[1] == (len(warm), 0, 0, 0)
            groups = [
                make_rows(n_rows, usccs[r * per_group : (r + 1) * per_group], today)
                for r in range(repeat)
            ]
            unchecked = baseline_copy(groups[0], ids, now, checked=False)
            # Per repetition: ingest_rows, the binary COPY (the baseline: the format
            # ingest_rows sends records in) and the text COPY, in turns.
            runs: list[tuple[float, float, float]] = []
            for r, rows in enumerate(groups):
                order = ("binary", "text") if r % 2 == 0 else ("text", "binary")
                base = {f: len(rows) / baseline_copy(rows, ids, now, binary=f == "binary")
                        for f in order}  # fmt: skip
                seconds, counts = timed_ingest(rows, now)
                assert counts == (len(rows), 0, 0, 0), counts
                runs.append((len(rows) / seconds, base["binary"], base["text"]))
            n = len(groups[0])
            text_base = median([r[2] for r in runs])
            emit("ingest_rows_per_s", median([r[0] for r in runs]), median([r[1] for r in runs]),
                 n, ratio_median=round(median([r[0] / r[1] for r in runs]), 4),
                 runs=[[round(a), round(b), round(c)] for a, b, c in runs],
                 baseline_format="binary",
                 copy_text_rows_per_s=round(text_base, 1),
                 ratio_to_text_copy=round(median([r[0] for r in runs]) / text_base, 4),
                 ratio_to_text_copy_median=round(median([r[0] / r[2] for r in runs]), 4),
                 copy_unchecked_rows_per_s=round(n / unchecked, 1))  # fmt: skip
            again: list[float] = []
            for rows in groups:
                seconds, counts = timed_ingest(rows, now)
                assert counts == (0, len(rows), 0, 0), counts
                again.append(len(rows) / seconds)
            emit("ingest_duplicates_rows_per_s", median(again), median([r[1] for r in runs]), n,
                 runs=[round(a) for a in again])  # fmt: skip
            db.session.remove()
            db.engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
