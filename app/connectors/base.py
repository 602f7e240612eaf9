"""The connector interface: how the platform fetches an enterprise's records from a provider.

A connector answers ``fetch(uscc, scope, months)`` with every table the scope unlocks
(:data:`ml.schema.SCOPE_TABLES`), each a list of rows keyed by the canonical column names of
:mod:`ml.schema` (without the bookkeeping columns ``provider``, ``batch_id``, ``version``, which
ingestion assigns), every value a string. It either returns the whole answer or raises
:class:`ConnectorError`: never part of one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ml import schema

Rows = list[dict[str, str]]
Tables = dict[str, Rows]

BOOKKEEPING_COLUMNS: frozenset[str] = frozenset({"provider", "batch_id", "version"})
MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class FailureReason(enum.StrEnum):
    """Why a fetch failed; stored with the job step and translated for people."""

    TIMEOUT = "timeout"  # the provider did not answer in time, retries exhausted
    UNAVAILABLE = "unavailable"  # 5xx or connection failures, retries exhausted
    REJECTED = "rejected"  # the provider refused the request (4xx)
    AUTH = "auth"  # the provider refused our client credentials
    MALFORMED = "malformed"  # the answer was not the expected shape
    CIRCUIT_OPEN = "circuit_open"  # too many recent failures: not asking the provider now
    NOT_CONFIGURED = "not_configured"  # no provider is configured for the scope


class ConnectorError(Exception):
    """A fetch failed; nothing of its answer may be used.

    ``reason`` is machine-readable (:class:`FailureReason`), ``detail`` says what happened
    in English for operators (status codes, the offending field).
    """

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@runtime_checkable
class Connector(Protocol):
    def provider_name(self, scope: str) -> str:
        """The provider recorded on rows fetched for ``scope``."""
        ...

    def fetch(self, uscc: str, scope: str, months: list[str]) -> Tables:
        """All tables of ``scope`` for ``uscc`` over ``months`` ("YYYY-MM").

        Raises :class:`ConnectorError`; never returns partial data."""
        ...


def columns_for(table: str) -> tuple[str, ...]:
    """The columns a connector delivers for ``table``."""
    return tuple(c for c in schema.TABLE_COLUMNS[table] if c not in BOOKKEEPING_COLUMNS)


def check_request(uscc: str, scope: str, months: list[str]) -> None:
    """Raise ``ValueError`` for a request no provider could answer (a programming error)."""
    if scope not in schema.SCOPE_TABLES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {sorted(schema.SCOPE_TABLES)}")
    if not months:
        raise ValueError("months must not be empty")
    bad = [m for m in months if not MONTH_PATTERN.match(m)]
    if bad:
        raise ValueError(f"months must be YYYY-MM, got {bad[:3]}")
    if len(uscc) != 18:
        raise ValueError(f"uscc must have 18 characters, got {uscc!r}")


def _cell(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


def validate_tables(payload: Any, uscc: str, scope: str, months: list[str]) -> Tables:
    """Check a provider's answer has exactly the expected shape and return it as strings.

    Expected: ``{"tables": {<table>: [ {<column>: value, ...}, ...], ...}}`` with every
    table of ``scope``, every row carrying exactly that table's columns (scalar values),
    ``uscc`` equal to the one asked for and, for monthly tables, the month among ``months``.
    Raises :class:`ConnectorError` (MALFORMED) naming the first problem.
    """

    def bad(detail: str) -> ConnectorError:
        return ConnectorError(FailureReason.MALFORMED, detail)

    if not isinstance(payload, Mapping) or not isinstance(payload.get("tables"), Mapping):
        raise bad("the answer is not an object with a 'tables' object")
    tables = payload["tables"]
    expected = set(schema.SCOPE_TABLES[scope])
    if set(tables) != expected:
        raise bad(f"expected tables {sorted(expected)}, got {sorted(map(str, tables))}")
    wanted_months = set(months)
    years = {m[:4] for m in months}
    out: Tables = {}
    for table in schema.SCOPE_TABLES[scope]:
        rows = tables[table]
        if not isinstance(rows, list):
            raise bad(f"{table}: expected a list of rows")
        columns = columns_for(table)
        period = schema.PERIOD_COLUMN[table]
        clean: Rows = []
        for index, row in enumerate(rows, start=1):
            if not isinstance(row, Mapping):
                raise bad(f"{table} row {index}: expected an object")
            if set(row) != set(columns):
                missing = sorted(set(columns) - set(row))
                extra = sorted(set(map(str, row)) - set(columns))
                raise bad(f"{table} row {index}: missing {missing}, unexpected {extra}")
            cells: dict[str, str] = {}
            for column in columns:
                cell = _cell(row[column])
                if cell is None:
                    raise bad(f"{table} row {index}: {column} is not a scalar value")
                cells[column] = cell
            if cells["uscc"] != uscc:
                raise bad(f"{table} row {index}: uscc {cells['uscc']!r} was not asked for")
            if table == schema.TAX_CREDIT_RATING:
                if cells[period] not in years:
                    raise bad(f"{table} row {index}: year {cells[period]!r} was not asked for")
            elif cells[period] not in wanted_months:
                raise bad(f"{table} row {index}: {period} {cells[period]!r} was not asked for")
            clean.append(cells)
        out[table] = clean
    return out
