"""Ingesting source records: validate, keep only what was authorized, dedupe, version.

One entry point, :func:`ingest_rows`, serves the office's CSV upload, the providers' push
API and the collection job. For every row it

1. validates every field (a bad field rejects the whole row, never half of it; the rejected
   row is kept with its line, field, a message code and an English message);
2. refuses rows of enterprises that are not registered, and — for every source but public
   credit — rows without a live collection grant for the scope or whose period is outside
   the grant's data range (data minimisation: of those rows only the key is kept, never the
   values);
3. compares the row with the latest stored version of its natural key: identical content is a
   duplicate and writes nothing, different content is stored as the next version (a
   correction); nothing is ever overwritten.

Rows are processed in chunks; each chunk costs a constant number of queries whatever its
size (enterprises, grants, latest versions, inserts). On PostgreSQL records go in with
``COPY``; on SQLite with ``executemany``. No ORM object is made per row.

The service flushes; the caller commits once (or rolls back: then nothing at all is kept).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import Any, cast
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from app.services import audit, authorization
from ml import schema
from models import AuditEvent, Enterprise, User, db
from models.base import utcnow
from models.codes import CodeError, normalize_uscc
from models.ingestion import BatchStatus, IngestionBatch, RejectedRow
from models.records import RECORD_MODELS

CHINA = ZoneInfo("Asia/Shanghai")
CHUNK_ROWS = 100_000
MAX_TEXT = 64
_META = frozenset({"provider", "batch_id", "version"})

SOURCE_LABELS = {
    schema.TAX: _l("Tax payments"),
    schema.TAX_CREDIT_RATING: _l("Tax credit rating"),
    schema.SOCIAL_INSURANCE: _l("Social insurance"),
    schema.UTILITIES: _l("Water, electricity and gas"),
    schema.PROVIDENT_FUND: _l("Housing provident fund"),
    schema.PUBLIC_CREDIT: _l("Public credit records"),
}

# Message codes of rejected rows, with the text the office UI shows (English msgids).
REJECTION_MESSAGES = {
    "required": _l("A value is required."),
    "bad_month": _l("Expected a month as YYYY-MM."),
    "future_period": _l("The period is in the future."),
    "bad_year": _l("Expected a four-digit year."),
    "bad_date": _l("Expected a date as YYYY-MM-DD."),
    "future_date": _l("The date is in the future."),
    "date_order": _l("This date is before the decision date."),
    "bad_amount": _l("Expected an amount in yuan with at most two decimals, like 1234.50."),
    "negative": _l("Must not be negative."),
    "bad_integer": _l("Expected a whole number."),
    "bad_flag": _l("Expected 0 or 1."),
    "bad_enum": _l("Not one of the allowed values."),
    "bad_identifier": _l("Expected letters, digits and . _ : / - (at most 64)."),
    "bad_uscc": _l("Not a valid unified social credit code."),
    "unknown_enterprise": _l("No enterprise with this code is registered on the platform."),
    "no_grant": _l(
        "The enterprise has not authorized collection of this data "
        "(no grant, or it was revoked, paused or has expired); the row was not stored."
    ),
    "outside_data_range": _l(
        "This period is outside the months the enterprise authorized; the row was not stored."
    ),
}


class IngestionError(Exception):
    """The batch as a whole is refused; nothing was written. ``message`` is for people."""

    code = "ingestion_error"

    def __init__(self, message: Any) -> None:
        super().__init__(str(message))
        self.message = message


class UnknownSource(IngestionError):
    code = "unknown_source"


class MissingColumns(IngestionError):
    """The rows lack required columns; ``columns`` names them."""

    code = "missing_columns"

    def __init__(self, columns: Sequence[str]) -> None:
        super().__init__(_l("Required columns are missing: %(cols)s.", cols=", ".join(columns)))
        self.columns = list(columns)


class IdempotencyConflict(IngestionError):
    """The provider reused an idempotency key for different content."""

    code = "idempotency_conflict"


class BadProvider(IngestionError):
    code = "bad_provider"


# Field parsers ------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message


_MONEY = re.compile(r"(\d{1,16})(?:\.(\d{1,2}))?")
_INTEGER = re.compile(r"\d{1,9}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")

Parser = Callable[[str], str | None]


def _money(value: str) -> str:
    # Fast paths for the common shapes ("1200", "1200.5", "1200.50"); the regex decides the rest.
    if value.isascii():
        whole, dot, cents = value.partition(".")
        if (
            whole.isdigit()
            and len(whole) <= 16
            and (not dot or (cents.isdigit() and 1 <= len(cents) <= 2))
        ):
            return f"{whole.lstrip('0') or '0'}.{cents.ljust(2, '0')}"
    match = _MONEY.fullmatch(value)
    if match is None:
        if value.startswith("-") and _MONEY.fullmatch(value[1:]):
            raise _Bad("negative", f"{value!r} is negative; amounts are never below 0.")
        raise _Bad("bad_amount", f"{value!r} is not an amount with at most 2 decimals.")
    whole, cents = match.groups()
    return f"{whole.lstrip('0') or '0'}.{(cents or '').ljust(2, '0')}"


def _integer(value: str) -> str:
    if _INTEGER.fullmatch(value) is None:
        if value.startswith("-") and _INTEGER.fullmatch(value[1:]):
            raise _Bad("negative", f"{value!r} is negative.")
        raise _Bad("bad_integer", f"{value!r} is not a whole number.")
    return str(int(value))


def _flag(value: str) -> str:
    if value not in ("0", "1"):
        raise _Bad("bad_flag", f"{value!r}: expected 0 or 1.")
    return value


def _one_of(values: tuple[str, ...]) -> Parser:
    allowed = frozenset(values)

    def parse(value: str) -> str:
        if value not in allowed:
            raise _Bad("bad_enum", f"{value!r} is not one of {', '.join(values)}.")
        return value

    return parse


def _identifier(value: str) -> str:
    if _IDENTIFIER.fullmatch(value) is None:
        raise _Bad("bad_identifier", f"{value!r} is not a valid identifier.")
    return value


@dataclass
class _Clock:
    """Today in China, and caches of periods already judged against it."""

    today: dt.date
    months: dict[str, str | _Bad] = field(default_factory=dict)

    @property
    def this_month(self) -> str:
        return self.today.strftime("%Y-%m")

    def month(self, value: str) -> str:
        cached = self.months.get(value)
        if cached is None:
            cached = self._month(value)
            self.months[value] = cached
        if isinstance(cached, _Bad):
            raise cached
        return cached

    def _month(self, value: str) -> str | _Bad:
        match = _MONTH.fullmatch(value)
        if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1900:
            return _Bad("bad_month", f"{value!r} is not a month as YYYY-MM.")
        if value > self.this_month:
            return _Bad("future_period", f"{value} is in the future.")
        return value

    def year(self, value: str) -> str:
        if not (len(value) == 4 and value.isdigit() and int(value) >= 1990):
            raise _Bad("bad_year", f"{value!r} is not a year (1990 or later).")
        if int(value) > self.today.year:
            raise _Bad("future_period", f"{value} is in the future.")
        return value

    def past_date(self, value: str) -> str:
        return self.date(value, past=True)

    def any_date(self, value: str) -> str:
        return self.date(value, past=False)

    def date(self, value: str, *, past: bool) -> str:
        try:
            if _DATE.fullmatch(value) is None:
                raise ValueError(value)
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise _Bad("bad_date", f"{value!r} is not a date as YYYY-MM-DD.") from None
        if past and day > self.today:
            raise _Bad("future_date", f"{value} is in the future.")
        return value


@dataclass(frozen=True)
class _Column:
    name: str
    # Given the batch's clock, the parser of this column's text (raises _Bad).
    bind: Callable[[_Clock], Parser]
    optional: bool = False
    # Converts the canonical text to the value SQLite's executemany binds.
    to_python: Callable[[str], Any] = str


def _plain(parse: Parser) -> Callable[[_Clock], Parser]:
    return lambda _clock: parse


def _col_money(name: str) -> _Column:
    return _Column(name, _plain(_money), to_python=Decimal)


def _col_int(name: str) -> _Column:
    return _Column(name, _plain(_integer), to_python=int)


_MONTH_COL = _Column("month", lambda clock: clock.month)

COLUMNS: dict[str, tuple[_Column, ...]] = {
    schema.TAX: (
        _Column("period", lambda clock: clock.month),
        _Column("tax_type", _plain(_one_of(schema.TAX_TYPES))),
        _col_money("amount_paid"),
        _col_money("declared_sales"),
        _Column("late_filing", _plain(_flag), to_python=lambda v: v == "1"),
        _col_money("arrears"),
    ),
    schema.TAX_CREDIT_RATING: (
        _Column("year", lambda clock: clock.year, to_python=int),
        _Column("rating", _plain(_one_of(schema.TAX_RATINGS))),
    ),
    schema.SOCIAL_INSURANCE: (
        _MONTH_COL,
        _col_int("insured_headcount"),
        _col_money("amount_due"),
        _col_money("amount_paid"),
        _col_money("arrears"),
    ),
    schema.UTILITIES: (
        _MONTH_COL,
        _Column("utility", _plain(_one_of(schema.UTILITY_KINDS))),
        _col_money("consumption"),
        _col_money("amount_billed"),
        _col_money("amount_paid"),
        _col_int("days_overdue"),
    ),
    schema.PROVIDENT_FUND: (
        _MONTH_COL,
        _col_int("contributing_employees"),
        _col_money("amount"),
        _col_money("arrears"),
    ),
    schema.PUBLIC_CREDIT: (
        _Column("record_id", _plain(_identifier)),
        _Column("record_type", _plain(_one_of(schema.PUBLIC_RECORD_TYPES))),
        _Column("severity", _plain(_one_of(schema.SEVERITIES))),
        _Column("decided_on", lambda clock: clock.past_date, to_python=dt.date.fromisoformat),
        _Column(
            "publication_ends_on",
            lambda clock: clock.any_date,
            optional=True,
            to_python=dt.date.fromisoformat,
        ),
        _Column(
            "repaired_on",
            lambda clock: clock.past_date,
            optional=True,
            to_python=dt.date.fromisoformat,
        ),
    ),
}
"""Per source: the data columns after ``uscc``, in ``ml.schema`` order, with their parsers."""


def required_columns(source: str) -> tuple[str, ...]:
    """The columns a batch of ``source`` must have (``ml.schema`` minus the record metadata)."""
    if source not in RECORD_MODELS:
        raise UnknownSource(_l("Unknown source: %(s)s.", s=source))
    return tuple(c for c in schema.TABLE_COLUMNS[source] if c not in _META)


def missing_columns(source: str, header: Iterable[str]) -> list[str]:
    present = {h.strip() for h in header if h is not None}
    return [c for c in required_columns(source) if c not in present]


def _check_provider(provider: str) -> str:
    provider = (provider or "").strip()
    if not provider or len(provider) > 100:
        raise BadProvider(_l("Name the provider (at most 100 characters)."))
    if provider[0] in "=+-@" or any(ord(c) < 32 for c in provider):
        raise BadProvider(
            _l("The provider name may not start with = + - @ or hold control characters.")
        )
    return provider


# The batch ----------------------------------------------------------------------------


@dataclass
class _Counts:
    accepted: int = 0
    corrected: int = 0
    duplicates: int = 0
    refused: int = 0  # rejected for want of a grant (per enterprise, for its audit trail)


@dataclass(slots=True)
class _Row:
    line: int
    uscc: str
    values: tuple[str | None, ...]  # canonical text of the data columns
    content_hash: str
    key: tuple[str, ...]  # the natural key (ml.schema.KEY_COLUMNS)


@dataclass
class _Rejection:
    line: int
    field: str | None
    code: str
    message: str
    raw: dict[str, Any]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).strip()


def _raw(row: Mapping[Any, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:  # csv.DictReader puts surplus cells under None
            raw["_extra"] = [_text(v) for v in value] if isinstance(value, list) else _text(value)
        else:
            raw[str(key)] = value if value is None or isinstance(value, str) else _text(value)
    return raw


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is processed.

    A batch allocates millions of small objects that all stay alive until it ends (rows,
    keys, versions); every full collection would walk all of them again, which made a
    million-row batch markedly slower than five 200k ones. Nothing here forms reference
    cycles, and the collector runs again (and catches up) as soon as the batch is done.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _chunks(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _Ingestion:
    def __init__(self, source: str, batch: IngestionBatch, provider: str, now: dt.datetime):
        self.source = source
        self.batch = batch
        self.provider = provider
        self.now = now
        self.model = RECORD_MODELS[source]
        self.columns = COLUMNS[source]
        self.key_columns = schema.KEY_COLUMNS[source]
        self.key_index = [
            [c.name for c in self.columns].index(k) for k in self.key_columns if k != "uscc"
        ]
        self.period_index = [c.name for c in self.columns].index(schema.PERIOD_COLUMN[source])
        self.scope = schema.TABLE_SCOPE[source]
        self.clock = _Clock(now.astimezone(CHINA).date())
        self.usccs: dict[str, str | _Bad] = {}
        self.enterprise_ids: dict[str, int | None] = {}
        self.windows: dict[str, authorization.CollectionWindow | None] = {}
        self.window_months: dict[int, tuple[str, str]] = {}  # 'YYYY-MM' sort as months do
        self.latest: dict[tuple[str, ...], tuple[int, str]] = {}
        self.per_enterprise: dict[int, _Counts] = {}
        self.postgres = db.session.get_bind().dialect.name == "postgresql"
        self.rejected_rows = 0
        self.rejections: list[_Rejection] = []
        # Raw rows of invalid rows with a valid USCC: their values are dropped afterwards if
        # the enterprise is not registered or has not authorized collection.
        self.invalid_of: list[tuple[str, dict[str, Any]]] = []
        self.required = required_columns(source)
        self.parsers = [(c.name, c.bind(self.clock), c.optional) for c in self.columns]
        self.has_optional = any(c.optional for c in self.columns)
        self.key_pair = len(self.key_index) == 1
        if len(self.key_index) > 2:
            raise RuntimeError(f"unexpected natural key {self.key_columns}")
        self.digest = hashlib.sha256(source.encode())

    # Validation ---------------------------------------------------------------------

    def _uscc(self, value: str) -> str:
        cached = self.usccs.get(value)
        if cached is None:
            try:
                cached = normalize_uscc(value)
            except CodeError:
                cached = _Bad("bad_uscc", f"{value!r} is not a valid unified social credit code.")
            self.usccs[value] = cached
        if isinstance(cached, _Bad):
            raise cached
        return cached

    def validate(self, line: int, texts: list[str], row: Mapping[str, Any]) -> _Row | None:
        """Check one row whose stripped texts (``uscc`` first, then the data columns) are
        ``texts``; on any bad field record every problem of the row and return None."""
        errors: list[tuple[str, str, str]] | None = None
        uscc = texts[0]
        try:
            if not uscc:
                raise _Bad("required", "A value is required.")
            uscc = self._uscc(uscc)
        except _Bad as bad:
            errors = [("uscc", bad.code, bad.message)]
        values: list[str | None] = []
        for (name, parse, optional), value in zip(self.parsers, texts[1:], strict=True):
            if value:
                try:
                    values.append(parse(value))
                    continue
                except _Bad as bad:
                    problem = (name, bad.code, bad.message)
            elif optional:
                values.append(None)
                continue
            else:
                problem = (name, "required", "A value is required.")
            values.append(None)
            errors = [problem] if errors is None else [*errors, problem]
        if errors is None and self.source == schema.PUBLIC_CREDIT:
            decided = values[3]
            for index, name in ((4, "publication_ends_on"), (5, "repaired_on")):
                other = values[index]
                if other is not None and decided is not None and other < decided:
                    problem = (name, "date_order", f"{other} is before {decided}.")
                    errors = [problem] if errors is None else [*errors, problem]
        if errors is not None:
            raw = _raw(row)
            self.rejections.extend(
                _Rejection(line, name, code, message, raw) for name, code, message in errors
            )
            if errors[0][0] != "uscc":  # the enterprise is known: minimise once grants are
                self.invalid_of.append((uscc, raw))
            self.rejected_rows += 1
            return None
        if self.has_optional:
            canonical = "\x1f".join([uscc, *(v or "" for v in values)])
        else:
            canonical = uscc + "\x1f" + "\x1f".join(cast(list[str], values))
        key = (
            (uscc, values[self.key_index[0]] or "")
            if self.key_pair
            else self.full_key(uscc, values)
        )
        return _Row(line, uscc, tuple(values), hashlib.sha256(canonical.encode()).hexdigest(), key)

    # Authorization ------------------------------------------------------------------

    def _lookup(self, usccs: set[str]) -> None:
        new = sorted(u for u in usccs if u not in self.enterprise_ids)
        size = 5000 if self.postgres else 900
        for start in range(0, len(new), size):
            part = new[start : start + size]
            query = sa.select(Enterprise.uscc, Enterprise.id).where(Enterprise.uscc.in_(part))
            found: dict[str, int] = {row.uscc: row.id for row in db.session.execute(query)}
            for uscc in part:
                self.enterprise_ids[uscc] = found.get(uscc)
            if self.scope is not None:
                registered = [u for u in part if found.get(u) is not None]
                windows = (
                    authorization.collection_windows(self.scope, registered, now=self.now)
                    if registered
                    else {}
                )
                for uscc in part:
                    self.windows[uscc] = windows.get(uscc)

    def _minimise_invalid(self) -> None:
        """Keep only the key of an invalid row whose enterprise may not be collected."""
        keep = (*self.key_columns, schema.PERIOD_COLUMN[self.source])
        for uscc, raw in self.invalid_of:
            unknown = self.enterprise_ids.get(uscc) is None
            if unknown or (self.scope is not None and self.windows.get(uscc) is None):
                for name in list(raw):
                    if name not in keep:
                        del raw[name]
        self.invalid_of = []

    def full_key(self, uscc: str, values: list[str | None]) -> tuple[str, ...]:
        first, second = self.key_index  # natural keys have at most two columns after uscc
        return (uscc, values[first] or "", values[second] or "")

    def _grant_problem(self, row: _Row) -> tuple[str, str] | None:
        if self.scope is None:
            return None
        window = self.windows.get(row.uscc)
        if window is None:
            return "no_grant", f"No live collection grant for {self.scope}; not stored."
        period = row.values[self.period_index] or ""
        if self.source == schema.TAX_CREDIT_RATING:
            inside = window.data_from.year <= int(period) <= window.data_to.year
        else:
            months = self.window_months.get(window.authorization_id)
            if months is None:
                months = (f"{window.data_from:%Y-%m}", f"{window.data_to:%Y-%m}")
                self.window_months[window.authorization_id] = months
            inside = months[0] <= period <= months[1]
        if inside:
            return None
        return (
            "outside_data_range",
            f"{period} is outside the authorized months "
            f"{window.data_from:%Y-%m}..{window.data_to:%Y-%m}; not stored.",
        )

    def _redacted(self, row: _Row) -> dict[str, Any]:
        raw: dict[str, Any] = {"uscc": row.uscc}
        names = [c.name for c in self.columns]
        for key in (*self.key_columns[1:], schema.PERIOD_COLUMN[self.source]):
            raw[key] = row.values[names.index(key)]
        return raw

    # Versions -----------------------------------------------------------------------

    def _load_latest(self, usccs: set[str]) -> None:
        """The latest (version, content hash) of every stored record of these enterprises.

        On PostgreSQL the lookup goes enterprise by enterprise through the unique index
        (a LATERAL subquery behind an ``OFFSET 0`` fence): a plain ``uscc IN (...)`` over
        a table that just grew by a million rows and has no fresh statistics is planned as
        a sequential scan per chunk, which made large batches quadratic.
        """
        table = self.model.__table__
        key_cols = [table.c[k] for k in self.key_columns]
        wanted = sorted(usccs)
        size = 20_000 if self.postgres else 900
        found: dict[tuple[str, ...], tuple[int, str]] = {}
        columns = ", ".join(f'r."{k}"' for k in (*self.key_columns, "version", "content_hash"))
        # Identifiers come from the models, never from input; the USCCs are a bound array
        # (hence the noqa/nosec for string-built SQL below).
        lateral = sa.text(
            f"SELECT t.* FROM unnest(CAST(:usccs AS varchar[])) AS u(uscc) "  # noqa: S608  # nosec B608
            f'CROSS JOIN LATERAL (SELECT {columns} FROM "{self.model.__tablename__}" AS r '
            f"WHERE r.uscc = u.uscc OFFSET 0) AS t"
        )
        for start in range(0, len(wanted), size):
            part = wanted[start : start + size]
            stmt: sa.Executable
            if self.postgres:
                stmt = lateral.bindparams(usccs=part)
            else:
                stmt = sa.select(*key_cols, table.c.version, table.c.content_hash).where(
                    table.c.uscc.in_(part)
                )
            for record in db.session.execute(stmt):
                key = tuple(str(v) for v in record[: len(key_cols)])
                version, digest = record[-2], record[-1]
                current = found.get(key)
                if current is None or version > current[0]:
                    found[key] = (version, digest)
        for key, value in found.items():
            self.latest.setdefault(key, value)

    # The chunk ----------------------------------------------------------------------

    def process(self, first_line: int, chunk: list[Mapping[str, Any]]) -> None:
        valid: list[_Row] = []
        rejections: list[_Rejection] = []
        self.rejections = rejections
        names, digest, validate = self.required, self.digest, self.validate
        for line, mapping in enumerate(chunk, first_line):
            texts = [v.strip() if type(v) is str else _text(v) for v in map(mapping.get, names)]
            digest.update(("\x1e" + "\x1f".join(texts)).encode())
            result = validate(line, texts, mapping)
            if result is not None:
                valid.append(result)
        self._lookup({row.uscc for row in valid} | {uscc for uscc, _ in self.invalid_of})
        self._minimise_invalid()

        authorized: list[tuple[_Row, int]] = []
        enterprise_ids = self.enterprise_ids
        for row in valid:
            enterprise_id = enterprise_ids.get(row.uscc)
            if enterprise_id is None:
                rejections.append(
                    _Rejection(
                        row.line,
                        "uscc",
                        "unknown_enterprise",
                        f"{row.uscc} is not registered on the platform; not stored.",
                        self._redacted(row),
                    )
                )
                self.rejected_rows += 1
                continue
            problem = self._grant_problem(row)
            if problem is not None:
                code, message = problem
                rejections.append(_Rejection(row.line, None, code, message, self._redacted(row)))
                self.rejected_rows += 1
                self._counts(enterprise_id).refused += 1
                continue
            authorized.append((row, enterprise_id))

        latest = self.latest
        self._load_latest({row.uscc for row, _ in authorized if row.key not in latest})
        to_store: list[tuple[_Row, int, int]] = []
        per_enterprise = self.per_enterprise
        for row, enterprise_id in authorized:
            counts = per_enterprise.get(enterprise_id) or self._counts(enterprise_id)
            previous = latest.get(row.key)
            if previous is not None and previous[1] == row.content_hash:
                counts.duplicates += 1
                continue
            version = 1 if previous is None else previous[0] + 1
            latest[row.key] = (version, row.content_hash)
            if version == 1:
                counts.accepted += 1
            else:
                counts.corrected += 1
            to_store.append((row, enterprise_id, version))
        self._store(to_store)
        self._store_rejections(rejections)

    def _counts(self, enterprise_id: int) -> _Counts:
        counts = self.per_enterprise.get(enterprise_id)
        if counts is None:
            counts = self.per_enterprise[enterprise_id] = _Counts()
        return counts

    # Writing ------------------------------------------------------------------------

    def _record_columns(self) -> list[str]:
        return [
            "uscc",
            *(c.name for c in self.columns),
            "enterprise_id",
            "provider",
            "batch_id",
            "version",
            "content_hash",
            "received_at",
        ]

    def _store(self, rows: list[tuple[_Row, int, int]]) -> None:
        if not rows:
            return
        names = self._record_columns()
        if self.postgres:
            middle = f"\t{_copy_text(self.provider)}\t{self.batch.id}\t"
            received = self.now.isoformat()
            lines = []
            for row, enterprise_id, version in rows:
                values = "\t".join("\\N" if v is None else v for v in row.values)
                lines.append(
                    f"{row.uscc}\t{values}\t{enterprise_id}{middle}{version}\t"
                    f"{row.content_hash}\t{received}\n"
                )
            _copy(self.model.__tablename__, names, lines)
        else:
            converters = [c.to_python for c in self.columns]
            params = []
            for row, enterprise_id, version in rows:
                record: dict[str, Any] = {"uscc": row.uscc}
                for column, convert, value in zip(
                    self.columns, converters, row.values, strict=True
                ):
                    record[column.name] = None if value is None else convert(value)
                record.update(
                    enterprise_id=enterprise_id,
                    provider=self.provider,
                    batch_id=self.batch.id,
                    version=version,
                    content_hash=row.content_hash,
                    received_at=self.now,
                )
                params.append(record)
            db.session.execute(sa.insert(cast(sa.Table, self.model.__table__)), params)

    def _store_rejections(self, rejections: list[_Rejection]) -> None:
        if not rejections:
            return
        params = [
            {
                "batch_id": self.batch.id,
                "line": r.line,
                "field": r.field,
                "code": r.code,
                "message": r.message,
                "raw": r.raw,
            }
            for r in rejections
        ]
        db.session.execute(sa.insert(cast(sa.Table, RejectedRow.__table__)), params)


def _copy_text(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy(table: str, columns: list[str], lines: list[str]) -> None:
    """``COPY`` text-format ``lines`` into ``table`` on the session's own connection (and so
    in its transaction)."""
    connection = db.session.connection().connection.driver_connection
    assert connection is not None  # noqa: S101
    quoted = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{table}" ({quoted}) FROM STDIN'
    try:
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for start in range(0, len(lines), 10_000):
                copy.write("".join(lines[start : start + 10_000]))
    except psycopg.errors.IntegrityError as exc:
        # As SQLAlchemy would raise it, so callers handle one kind of conflict.
        raise sa.exc.IntegrityError(statement, None, exc) from exc


def _batch_hash(source: str, rows: Iterable[Mapping[str, Any]], columns: tuple[str, ...]) -> str:
    digest = hashlib.sha256(source.encode())
    for row in rows:
        texts = [v.strip() if type(v) is str else _text(v) for v in map(row.get, columns)]
        digest.update(("\x1e" + "\x1f".join(texts)).encode())
    return digest.hexdigest()


def find_batch(provider: str, idempotency_key: str) -> IngestionBatch | None:
    return db.session.scalar(
        sa.select(IngestionBatch).where(
            IngestionBatch.provider == provider, IngestionBatch.idempotency_key == idempotency_key
        )
    )


def ingest_rows(
    source: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    provider: str,
    idempotency_key: str,
    actor: User | str | None,
    filename: str | None = None,
    now: dt.datetime | None = None,
    first_line: int = 1,
    recompute_profiles: bool = True,
) -> IngestionBatch:
    """Ingest one batch of ``source`` rows (``ml.schema`` column names, text values).

    ``actor`` is the office user uploading, a provider's API client id, or None for the
    platform's own collection job. ``first_line`` numbers the first row (2 for a CSV file
    whose line 1 is the header). Returns the completed batch with its counts; rejected rows
    are in :class:`RejectedRow`. A key already used by ``provider`` with the same content
    returns that first batch and writes nothing.

    Raises :class:`UnknownSource`, :class:`BadProvider`, :class:`MissingColumns` (the first
    row lacks required columns) and :class:`IdempotencyConflict` (the key was used for other
    content); then nothing is written. Concurrent batches run in parallel; should two of them
    store the same version of one record (or reuse one key) at the same moment, the later
    fails with ``sqlalchemy.exc.IntegrityError`` (``UNIQUE(key, version)``): roll back and
    send it again — the retry sees the other's records and counts them as duplicates or
    stores the next version.
    """
    now = now or utcnow()
    columns = required_columns(source)
    provider = _check_provider(provider)
    key = (idempotency_key or "").strip()
    if not key or len(key) > 200:
        raise IngestionError(_l("An idempotency key of 1 to 200 characters is required."))

    iterator = iter(rows)
    first = next(iterator, None)
    if first is not None:
        missing = missing_columns(source, first.keys())
        if missing:
            raise MissingColumns(missing)
    ahead: list[Mapping[str, Any]] = [] if first is None else [first]

    def all_rows() -> Iterator[Mapping[str, Any]]:
        yield from ahead
        yield from iterator

    existing = find_batch(provider, key)
    if existing is not None:
        if existing.source == source and existing.content_hash == _batch_hash(
            source, all_rows(), columns
        ):
            return existing
        raise IdempotencyConflict(
            _l(
                "The idempotency key %(key)s was already used by %(provider)s for a different "
                "batch (no. %(id)d); nothing was written.",
                key=key,
                provider=provider,
                id=existing.id,
            )
        )

    batch = IngestionBatch(
        source=source,
        provider=provider,
        idempotency_key=key,
        content_hash="",
        received_at=now,
        submitted_by_user_id=actor.id if isinstance(actor, User) else None,
        submitted_by_client=actor if isinstance(actor, str) else None,
        status=BatchStatus.PROCESSING,
        filename=filename,
    )
    db.session.add(batch)
    db.session.flush()

    work = _Ingestion(source, batch, provider, now)
    line = first_line
    total = 0
    with _cyclic_gc_paused():
        for chunk in _chunks(all_rows(), CHUNK_ROWS):
            work.process(line, chunk)
            line += len(chunk)
            total += len(chunk)

    batch.content_hash = work.digest.hexdigest()
    batch.rows_total = total
    batch.accepted = sum(c.accepted for c in work.per_enterprise.values())
    batch.corrected = sum(c.corrected for c in work.per_enterprise.values())
    batch.duplicates = sum(c.duplicates for c in work.per_enterprise.values())
    batch.rejected = work.rejected_rows
    batch.status = BatchStatus.COMPLETED
    batch.completed_at = now
    db.session.flush()
    _audit(batch, work, actor, now)
    changed = [e for e, c in work.per_enterprise.items() if c.accepted or c.corrected]
    if recompute_profiles and changed:
        # Their credit profiles are recomputed by a job once the caller commits.
        from app.services import profiles

        profiles.records_changed(changed)
    return batch


# Audit ------------------------------------------------------------------------------


def _audit(
    batch: IngestionBatch, work: _Ingestion, actor: User | str | None, now: dt.datetime
) -> None:
    """One event for the batch, then one per enterprise it touched (stored, duplicate or
    refused rows) so each enterprise sees who delivered what about it.

    The per-enterprise events are appended in bulk right behind the batch event: that
    event's append took the audit lock (PostgreSQL) or the write lock (SQLite) for this
    transaction, and each event is chained with :func:`audit.chain_hash` exactly as
    :func:`audit.record` does.
    """
    user = actor if isinstance(actor, User) else None
    client = actor if isinstance(actor, str) else None
    common = {"source": batch.source, "provider": batch.provider, "batch_id": batch.id}
    if client:
        common["client_id"] = client
    head = audit.record(
        "ingestion.batch",
        actor=user,
        scope=work.scope or batch.source,
        object_type="ingestion_batch",
        object_id=batch.id,
        details={
            **common,
            "rows": batch.rows_total,
            "accepted": batch.accepted,
            "corrected": batch.corrected,
            "duplicates": batch.duplicates,
            "rejected": batch.rejected,
        },
        now=now,
    )
    prev_hash, seq = head.hash, head.seq
    params = []
    for enterprise_id in sorted(work.per_enterprise):
        counts = work.per_enterprise[enterprise_id]
        seq += 1
        event = AuditEvent(
            seq=seq,
            occurred_at=now,
            actor_user_id=user.id if user else None,
            actor_org_id=user.organization_id if user else None,
            action="ingestion.batch",
            enterprise_id=enterprise_id,
            scope=work.scope or batch.source,
            object_type="ingestion_batch",
            object_id=str(batch.id),
            details={
                **common,
                "stored": counts.accepted + counts.corrected,
                "corrected": counts.corrected,
                "duplicates": counts.duplicates,
                "refused": counts.refused,
            },
            prev_hash=prev_hash,
        )
        event.hash = audit.chain_hash(prev_hash, event)
        prev_hash = event.hash
        params.append({name: getattr(event, name) for name in _AUDIT_COLUMNS})
    if not params:
        return
    if work.postgres:
        lines = [
            "\t".join(_copy_value(record[name]) for name in _AUDIT_COLUMNS) + "\n"
            for record in params
        ]
        _copy(AuditEvent.__tablename__, list(_AUDIT_COLUMNS), lines)
    else:
        db.session.execute(sa.insert(cast(sa.Table, AuditEvent.__table__)), params)


_AUDIT_COLUMNS = tuple(c.key for c in AuditEvent.__table__.columns if c.key != "id")


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, dict):
        return _copy_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return _copy_text(str(value))


# Reading, for the office pages --------------------------------------------------------


def batches(limit: int = 50, offset: int = 0) -> list[IngestionBatch]:
    return list(
        db.session.scalars(
            sa.select(IngestionBatch)
            .order_by(IngestionBatch.received_at.desc(), IngestionBatch.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )


def batch_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(IngestionBatch)) or 0


def rejected_rows(batch: IngestionBatch, *, limit: int, offset: int = 0) -> list[RejectedRow]:
    return list(
        db.session.scalars(
            sa.select(RejectedRow)
            .where(RejectedRow.batch_id == batch.id)
            .order_by(RejectedRow.line, RejectedRow.id)
            .limit(limit)
            .offset(offset)
        )
    )


def rejected_count(batch: IngestionBatch) -> int:
    return (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(RejectedRow)
            .where(RejectedRow.batch_id == batch.id)
        )
        or 0
    )
