"""Records go into PostgreSQL through a binary COPY (``ingestion.RECORD_COPY_FORMAT``); what
is stored is exactly what the text COPY stored before: the same values, to the bytes of
each NUMERIC, NULLs, dates and the instant of ``received_at``."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import ingestion
from models.records import RECORD_MODELS
from tests.conftest import Factory
from tests.services.test_ingestion import _enterprise

# A received-at time with microseconds, in a zone other than UTC (Beijing time).
RECEIVED = dt.datetime(2026, 11, 22, 11, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))
PROVIDER = "省税务局\\第一分局 A"  # a backslash (COPY text escapes it) and Chinese

AMOUNTS = ["0", "0.5", "00012.30", "1.01", "10000", "12345678.9", "100000000", "99990000.01",
           "9999999999999999.99", "1000000000000.00"]  # fmt: skip
ROWS: dict[str, list[dict[str, str]]] = {
    "tax": [
        {"period": f"2025-{m:02d}", "tax_type": "VAT" if m % 2 else "CIT", "amount_paid": a,
         "declared_sales": AMOUNTS[-1 - i], "late_filing": str(m % 2), "arrears": "0"}
        for i, (m, a) in enumerate(zip(range(1, 11), AMOUNTS, strict=True))
    ],
    "tax_credit_rating": [{"year": "2024", "rating": "A"}, {"year": "2025", "rating": "D"}],
    "social_insurance": [
        {"month": "2025-01", "insured_headcount": "000123", "amount_due": "5000",
         "amount_paid": "4999.99", "arrears": "0.01"},
        {"month": "2025-02", "insured_headcount": "999999999", "amount_due": "0",
         "amount_paid": "0", "arrears": "0"},
    ],
    "utilities": [
        {"month": "2025-01", "utility": "water", "consumption": "3.5", "amount_billed": "10",
         "amount_paid": "10", "days_overdue": "0"},
        {"month": "2025-02", "utility": "electricity", "consumption": "123456789012.25",
         "amount_billed": "0.10", "amount_paid": "0", "days_overdue": "31"},
    ],
    "provident_fund": [
        {"month": "2025-01", "contributing_employees": "0", "amount": "900", "arrears": "0"},
    ],
    "public_credit": [
        {"record_id": "CF-2025/001", "record_type": "administrative_penalty",
         "severity": "general", "decided_on": "2025-03-01", "publication_ends_on": "",
         "repaired_on": ""},
        {"record_id": "CF-1999:12_31.x", "record_type": "administrative_penalty",
         "severity": "serious", "decided_on": "1999-12-31", "publication_ends_on": "2000-01-01",
         "repaired_on": "2000-02-29"},
        {"record_id": "a", "record_type": "administrative_penalty", "severity": "minor",
         "decided_on": "2024-02-29", "publication_ends_on": "2099-12-31", "repaired_on": ""},
    ],
}  # fmt: skip


def _stored(model: Any, uscc: str) -> list[dict[str, Any]]:
    """The enterprise's records as the server has them: every column's text, NULLs and
    the binary form of each NUMERIC, and the values as SQLAlchemy reads them (but for the
    columns that differ from one enterprise to another: its ids and the content hash, which
    covers the USCC)."""
    table = model.__table__
    skip = {"id", "uscc", "enterprise_id", "batch_id", "content_hash"}
    names = [c.key for c in table.columns if c.key not in skip]
    columns: list[Any] = []
    for name in names:
        column = table.c[name]
        columns.append(column)
        columns.append(sa.cast(column, sa.Text).label(f"{name}_text"))
        if isinstance(column.type, sa.Numeric):
            columns.append(sa.func.numeric_send(column).label(f"{name}_send"))
    order = [table.c[k] for k in ingestion.schema.KEY_COLUMNS[model.__tablename__]]
    rows = db.session.execute(sa.select(*columns).where(table.c.uscc == uscc).order_by(*order))
    return [dict(row._mapping) for row in rows]


@pytest.mark.postgres
@pytest.mark.parametrize("source", sorted(ROWS))
def test_binary_copy_stores_what_the_text_copy_stored(pg_app, monkeypatch, source):
    copies: list[str] = []
    real = ingestion._PendingCopy.__init__

    def spy(self, table, columns, data, *, binary=False):
        real(self, table, columns, data, binary=binary)
        copies.append(self.statement)

    monkeypatch.setattr(ingestion._PendingCopy, "__init__", spy)
    factory = Factory(pg_app)
    scopes = ("tax", "social_insurance", "utilities", "provident_fund")
    stored = {}
    with pg_app.app_context():
        for copy_format in ("text", "binary"):
            monkeypatch.setattr(ingestion, "RECORD_COPY_FORMAT", copy_format)
            enterprise, _, _ = _enterprise(factory, scopes=scopes)
            rows = [{"uscc": enterprise.uscc, **row} for row in ROWS[source]]
            batch = ingestion.ingest_rows(
                source, rows, provider=PROVIDER, idempotency_key=copy_format, actor=None,
                now=RECEIVED, recompute_profiles=False,
            )  # fmt: skip
            assert (batch.accepted, batch.rejected) == (len(rows), 0)
            db.session.commit()
            stored[copy_format] = _stored(RECORD_MODELS[source], enterprise.uscc)
            # The stored content hashes are those the batch computed: the same rows again
            # are duplicates.
            again = ingestion.ingest_rows(
                source, rows, provider=PROVIDER, idempotency_key=f"{copy_format}-again",
                actor=None, now=RECEIVED, recompute_profiles=False,
            )  # fmt: skip
            assert (again.accepted, again.duplicates) == (0, len(rows))
            db.session.commit()
        db.session.remove()
    record_copies = [c for c in copies if f'COPY "{source}"' in c]
    assert [c.endswith("(FORMAT BINARY)") for c in record_copies] == [False, True]
    assert stored["binary"] == stored["text"]
    assert len(stored["binary"]) == len(ROWS[source])
    for record in stored["binary"]:
        assert record["received_at"] == RECEIVED
        assert record["provider"] == PROVIDER
        assert record["version"] == 1
    if source == "tax":
        paid = [r["amount_paid"] for r in stored["binary"]]  # by period: AMOUNTS' order
        assert paid == [Decimal(a).quantize(Decimal("0.01")) for a in AMOUNTS]
        assert all(p.as_tuple().exponent == -2 for p in paid)  # two decimals, as before
        assert [r["late_filing"] for r in stored["binary"]] == [bool(m % 2) for m in range(1, 11)]
    if source == "public_credit":
        by_id = {r["record_id"]: r for r in stored["binary"]}
        assert by_id["CF-2025/001"]["publication_ends_on"] is None
        assert by_id["CF-2025/001"]["repaired_on_text"] is None
        assert by_id["CF-1999:12_31.x"]["decided_on"] == dt.date(1999, 12, 31)
        assert by_id["CF-1999:12_31.x"]["repaired_on"] == dt.date(2000, 2, 29)
        assert by_id["a"]["publication_ends_on"] == dt.date(2099, 12, 31)


@pytest.mark.postgres
def test_amounts_in_binary_are_the_bytes_postgresql_sends_for_them(pg_app):
    """Each NUMERIC field is its length, then exactly what ``numeric_send`` gives for the
    amount as PostgreSQL stores it (no leading or trailing zero digits, scale 2)."""
    rng = random.Random(8)
    texts = [
        "0",
        "0.00",
        "0.01",
        "0.1",
        "0.50",
        "12.30",
        "1.01",
        "10000",
        "100000000",
        "1000000000000.00",
        "9999999999999999.99",
        "123456789012.25",
        "99990000.01",
    ]
    texts += [
        f"{rng.randrange(10 ** rng.randrange(1, 17))}.{rng.randrange(100):02d}"
        for _ in range(2_000)
    ]
    texts += [f"{rng.choice([0, 1, 10**4, 10**8, 10**12, 10**15])}."
              f"{rng.choice([0, 1, 10, 50, 99]):02d}" for _ in range(500)]  # fmt: skip
    canonical = [ingestion._money(t) for t in texts]
    fields = ingestion._binary_field("money", pa.array([*canonical, None], pa.string()))
    *values, null = fields.to_pylist()
    assert null == b"\xff\xff\xff\xff"
    with pg_app.app_context():
        sent = db.session.scalars(
            sa.text(
                "SELECT numeric_send(v::numeric(18, 2)) "
                "FROM unnest(CAST(:texts AS text[])) WITH ORDINALITY AS t(v, i) ORDER BY i"
            ),
            {"texts": texts},
        ).all()
        db.session.remove()
    assert values == [len(s).to_bytes(4, "big") + bytes(s) for s in sent]


def test_amounts_with_more_decimals_are_refused_not_rounded():
    with pytest.raises(pa.ArrowInvalid):
        ingestion._binary_money(pa.array(["1.234"]))
