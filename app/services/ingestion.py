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
``COPY`` in its binary format (one for the whole batch when its lookups can use a second
connection, fed chunk after chunk while Python validates the next, a chunk's lookups
running in a thread of their own while it is validated); on SQLite with ``executemany``.
No ORM object is made per row.

The service flushes; the caller commits once (or rolls back: then nothing at all is kept).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import json
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from psycopg.copy import QueuedLibpqWriter

from app.services import audit, authorization, workdays
from ml import schema
from models import AuditEvent, Enterprise, User, db
from models.base import utcnow
from models.codes import CodeError, normalize_uscc
from models.ingestion import BatchStatus, IngestionBatch, RejectedRow
from models.records import RECORD_MODELS

# Chunks of a few thousand rows: the database gets each chunk's rows soon after they are
# read (it stores them while Python checks the next; with large chunks it waited for each
# one), and with a reader a chunk's lookups run while it is validated, so that many chunks
# cost little more than a few large ones (measured at 50k rows: 0.50 -> 0.64 of a raw COPY).
CHUNK_ROWS = 5_000
FIRST_CHUNK_ROWS = 1_000  # the first chunk; the next ones double in size up to CHUNK_ROWS
# With a reader, the COPY of a batch goes on from chunk to chunk and rejected rows wait for
# it to end (the session's connection is busy); past this many it is ended to store them.
REJECTIONS_HELD = 10_000
# How records go into PostgreSQL: "binary" (COPY's binary format, made column by column in
# Python: the server no longer parses every amount, number and timestamp from text, which
# took 10-15 % of its time for a batch) or "text".
RECORD_COPY_FORMAT = "binary"
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


# ASCII digits only: a full-width "１２" is not an amount the database would take.
_MONEY = re.compile(r"(\d{1,16})(?:\.(\d{1,2}))?", re.ASCII)
_INTEGER = re.compile(r"\d{1,9}", re.ASCII)
_MONTH = re.compile(r"(\d{4})-(\d{2})", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
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
        if not (len(value) == 4 and value.isascii() and value.isdigit() and int(value) >= 1990):
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


# Vectorized fast paths (pyarrow.compute, RE2: ``[0-9]`` is ASCII only): a value matching
# ``pattern`` is valid and its canonical text is what ``canonical`` makes of it (applied to
# the whole column; only the values matching ``pattern`` are kept from it). Any other
# non-empty value goes through the column's Python parser, which is the authority: it
# accepts it (canonically) or says what is wrong with it.


def _without_leading_zeros(texts: pa.Array) -> pa.Array:
    """Leading zeros dropped, but for the last digit before the point: "007" -> "7",
    "00.5" -> "0.5" (the regex runs only if some value starts with a zero)."""
    if pc.any(pc.starts_with(texts, "0")).as_py():
        return pc.replace_substring_regex(texts, r"^0+([0-9])", r"\1")
    return texts


def _canonical_money(texts: pa.Array) -> pa.Array:
    """Of digits with at most two decimals: no leading zeros and two decimals, as
    :func:`_money` ("012" -> "12.00", "1.5" -> "1.50")."""
    texts = _without_leading_zeros(texts)
    point = pc.find_substring(texts, ".")  # -1 without one
    width = pc.subtract(pc.binary_length(texts), point)  # the point and its decimals
    suffix = pc.if_else(pc.less(point, 0), ".00", pc.if_else(pc.equal(width, 2), "0", ""))
    return pc.binary_join_element_wise(texts, suffix, "")


FastPath = tuple[str, Callable[[pa.Array], pa.Array]]
_FAST_MONEY: FastPath = (r"^[0-9]{1,16}(\.[0-9]{1,2})?$", _canonical_money)
_FAST_INTEGER: FastPath = (r"^[0-9]{1,9}$", _without_leading_zeros)
_FAST_IDENTIFIER: FastPath = (r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$", lambda texts: texts)


@dataclass(frozen=True)
class _Column:
    name: str
    # Given the batch's clock, the parser of this column's text (raises _Bad).
    bind: Callable[[_Clock], Parser]
    optional: bool = False
    # Converts the canonical text to the value SQLite's executemany binds.
    to_python: Callable[[str], Any] = str
    # Columns of many distinct values (amounts, counts, ids) have a vectorized fast path;
    # the others (months, enumerations, dates) are parsed once per distinct value.
    fast: FastPath | None = None


def _plain(parse: Parser) -> Callable[[_Clock], Parser]:
    return lambda _clock: parse


def _col_money(name: str) -> _Column:
    return _Column(name, _plain(_money), to_python=Decimal, fast=_FAST_MONEY)


def _col_int(name: str) -> _Column:
    return _Column(name, _plain(_integer), to_python=int, fast=_FAST_INTEGER)


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
        _Column("record_id", _plain(_identifier), fast=_FAST_IDENTIFIER),
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


@dataclass
class _Rejection:
    line: int
    field: str | None
    code: str
    message: str
    raw: dict[str, Any]


Problem = tuple[str, str]  # (message code, message)
_REQUIRED: Problem = ("required", "A value is required.")


@dataclass
class _Parsed:
    """One chunk after validation, which needs no database: its valid rows as columns."""

    lines: np.ndarray  # the line of each valid row
    usccs: list[str]  # the distinct canonical USCCs of the valid rows
    uscc_index: np.ndarray  # per valid row, the position of its USCC in ``usccs``
    uscc: pa.Array  # per valid row, its canonical USCC
    values: list[pa.Array]  # per data column, the canonical text (null: an empty optional)
    hashes: list[str]  # per valid row, the SHA-256 of its canonical values
    keys: list[str]  # per valid row, its natural key ("\x1f"-joined)
    rejections: list[_Rejection]  # the invalid rows' problems, in line order
    invalid: int  # how many rows were invalid
    invalid_of: list[tuple[str, dict[str, Any]]]  # (USCC, raw row) of invalid rows


@dataclass
class _Found:
    """What the database says about some enterprises (see :meth:`_Ingestion._fetch`)."""

    enterprise_ids: dict[str, int | None] = field(default_factory=dict)  # None: unregistered
    windows: dict[str, authorization.CollectionWindow | None] = field(default_factory=dict)
    latest: dict[str, tuple[int, str]] = field(default_factory=dict)  # key: (version, hash)
    loaded: list[str] = field(default_factory=list)  # whose stored versions ``latest`` has


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


def _column_texts(chunk: Sequence[Mapping[str, Any]], name: str) -> pa.Array:
    """The stripped text of column ``name`` in every row ("" where it is missing)."""
    values: list[Any] = [row.get(name) for row in chunk]
    try:
        texts = [value.strip() for value in values]
    except AttributeError:  # numbers, booleans or None (JSON pushes, short CSV lines)
        texts = [value.strip() if type(value) is str else _text(value) for value in values]
    return pa.array(texts, type=pa.string())


def _joined(arrays: Sequence[pa.Array | pa.Scalar], separator: str, null: str = "") -> pa.Array:
    return pc.binary_join_element_wise(
        *arrays, separator, null_handling="replace", null_replacement=null
    )


def _concatenated(strings: pa.Array) -> memoryview:
    """The bytes of all the values of a string array without nulls, one after the other."""
    _validity, offsets_buffer, data = strings.buffers()
    if data is None or len(strings) == 0:
        return memoryview(b"")
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=width)
    start, end = offsets[strings.offset], offsets[strings.offset + len(strings)]
    return memoryview(data)[int(start) : int(end)]


def _rows(mask: pa.Array | np.ndarray) -> np.ndarray:
    """Positions where a boolean array is true."""
    if isinstance(mask, np.ndarray):
        return np.flatnonzero(mask)
    return np.flatnonzero(mask.fill_null(False).to_numpy(zero_copy_only=False))


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
    """The rows in chunks of ``size``, but for the first and the last ones.

    A chunk is stored while the next one is validated and checked, so the database waits
    for the first chunk and Python for the last one: the first chunks start at
    :data:`FIRST_CHUNK_ROWS` and double up to ``size`` (the database starts early), and the
    last one (known as such by reading a chunk ahead) is about as small (the batch ends soon
    after its last rows are validated). Each chunk costs a few queries, so there are only a
    few more chunks than rows / ``size``.
    """
    iterator = iter(rows)
    smallest = min(size, FIRST_CHUNK_ROWS)
    step = smallest
    ahead = list(islice(iterator, step + size))
    while ahead:
        if len(ahead) < step + size:  # these are all the rows left
            if len(ahead) <= 2 * smallest:
                step = min(size, len(ahead))
            elif len(ahead) - smallest <= step:
                step = len(ahead) - smallest
        yield ahead[:step]
        del ahead[:step]
        step = min(size, step * 2)
        if len(ahead) < step + size:
            ahead.extend(islice(iterator, step + size - len(ahead)))


class _Writer(QueuedLibpqWriter):
    """psycopg's queued COPY writer, but with a queue of 32 blocks (of at most 128 kB)
    instead of 1024: should Python validate faster than the database stores, ``write``
    waits for the writer thread rather than the batch piling up in memory."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        super().__init__(cursor)
        queued = getattr(self, "_queue", None)
        if queued is not None:
            self._queue = type(queued)(maxsize=32)


class _PendingCopy:
    """A ``COPY`` whose data a psycopg writer thread is still sending while the caller goes
    on (validating the next chunks: the database stores them while Python checks the next,
    on two cores at once); :meth:`write` sends more rows to it. :meth:`finish` waits until
    the server has stored it all. It runs on the session's own connection, so in its
    transaction; nothing else may use that connection until it is finished."""

    def __init__(
        self, table: str, columns: Sequence[str], data: memoryview, *, binary: bool = False
    ) -> None:
        connection = db.session.connection().connection.driver_connection
        assert connection is not None  # noqa: S101
        quoted = ", ".join(f'"{c}"' for c in columns)
        self.statement = f'COPY "{table}" ({quoted}) FROM STDIN'
        if binary:  # the data are tuples in PostgreSQL's binary COPY format (_BinaryRows)
            self.statement += " (FORMAT BINARY)"
        self.binary = binary
        self._cursor = connection.cursor()
        self._context = self._cursor.copy(self.statement, writer=_Writer(self._cursor))
        self._copy = self._context.__enter__()
        if binary:  # psycopg sends blocks as they are: the header is ours to send
            self.write(memoryview(_BINARY_HEADER))
        self.write(data)

    def write(self, data: memoryview) -> None:
        """Send more rows (the same COPY goes on)."""
        try:
            self._copy.write(data)
        except BaseException as exc:
            self.abort(exc)
            raise

    def finish(self) -> None:
        try:
            if self.binary:  # and so is the trailer
                self._copy.write(_BINARY_TRAILER)
            self._context.__exit__(None, None, None)
        except psycopg.errors.IntegrityError as exc:
            # As SQLAlchemy would raise it, so callers handle one kind of conflict.
            raise sa.exc.IntegrityError(self.statement, None, exc) from exc
        finally:
            self._cursor.close()

    def abort(self, exc: BaseException) -> None:
        """Cancel the COPY (the caller is failing with ``exc`` and will roll back)."""
        with contextlib.suppress(Exception):
            self._context.__exit__(type(exc), exc, exc.__traceback__)
        with contextlib.suppress(Exception):
            self._cursor.close()


class _Ingestion:
    """One batch, chunk after chunk: :meth:`parse` validates a chunk (no database),
    :meth:`apply` checks it against the platform (enterprises, grants, stored versions) and
    stores it. On PostgreSQL the COPY is still running when :meth:`apply` returns and the
    next chunk is parsed meanwhile; with a reader (see :func:`_reader`) the next chunks'
    rows go on into that same COPY, the rejected rows being held until it ends.
    :meth:`finish` (or :meth:`abort`) ends it."""

    def __init__(
        self,
        source: str,
        batch: IngestionBatch,
        provider: str,
        now: dt.datetime,
        reader: sa.Connection | None = None,
    ):
        self.source = source
        # Where lookups go: a second connection, so that they run while the session's own
        # connection is busy with the previous chunk's COPY (see ingest_rows), or the session.
        self.reader = reader
        self.batch = batch
        self.provider = provider
        self.now = now
        self.model = RECORD_MODELS[source]
        self.columns = COLUMNS[source]
        self.names = [c.name for c in self.columns]
        self.key_columns = schema.KEY_COLUMNS[source]
        self.key_index = [self.names.index(k) for k in self.key_columns if k != "uscc"]
        self.period_index = self.names.index(schema.PERIOD_COLUMN[source])
        self.scope = schema.TABLE_SCOPE[source]
        self.clock = _Clock(workdays.local_date(now))
        self.usccs: dict[str, str | _Bad] = {}
        self.enterprise_ids: dict[str, int | None] = {}
        self.windows: dict[str, authorization.CollectionWindow | None] = {}
        # The latest version and content hash of every natural key seen in this batch, from
        # the database (``loaded``: enterprises already read) or stored by the batch itself
        # (two dicts of plain values: no object per key for the garbage collector to walk).
        self.latest: dict[str, int] = {}
        self.latest_hash: dict[str, str] = {}
        self.loaded: set[str] = set()
        self.per_enterprise: dict[int, _Counts] = {}
        self.postgres = db.session.get_bind().dialect.name == "postgresql"
        self.rejected_rows = 0
        self.required = required_columns(source)
        self.parsers = [c.bind(self.clock) for c in self.columns]
        self.digest = hashlib.sha256(source.encode())
        self.pending: _PendingCopy | None = None
        self.held: list[_Rejection] = []  # rejected rows waiting for the COPY to end
        # With a reader, a chunk's lookups run in this thread while the chunk is validated.
        self.lookups = (
            None
            if reader is None
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingestion-lookups")
        )
        self.prefetched: Future[_Found] | None = None
        self.copy_columns = [
            "uscc", *self.names, "enterprise_id", "provider", "batch_id", "version",
            "content_hash", "received_at",
        ]  # fmt: skip
        self.binary = (
            _BinaryRows(
                cast(sa.Table, self.model.__table__), self.copy_columns, provider, batch.id, now
            )
            if self.postgres and RECORD_COPY_FORMAT == "binary"
            else None
        )

    # Validation (no database) ---------------------------------------------------------

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

    @staticmethod
    def _by_distinct(
        texts: pa.Array, parse: Parser, optional: bool
    ) -> tuple[pa.Array, dict[int, Problem]]:
        """Parse each distinct value once; the canonical text per row (null where empty or
        bad) and the problem of every bad row."""
        encoded = texts.dictionary_encode()
        canonical: list[str | None] = []
        problems: list[Problem | None] = []
        for value in encoded.dictionary.to_pylist():
            problem: Problem | None = None
            text: str | None = None
            if value:
                try:
                    text = parse(value)
                except _Bad as bad:
                    problem = (bad.code, bad.message)
            elif not optional:
                problem = _REQUIRED
            canonical.append(text)
            problems.append(problem)
        result = pa.array(canonical, type=pa.string()).take(encoded.indices)
        if not any(problems):
            return result, {}
        flags = np.array([p is not None for p in problems])
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        return result, {
            int(row): cast(Problem, problems[indices[row]]) for row in _rows(flags[indices])
        }

    @staticmethod
    def _fast(
        texts: pa.Array, column: _Column, parse: Parser
    ) -> tuple[pa.Array, dict[int, Problem]]:
        """The vectorized fast path; values outside it go through the Python parser."""
        assert column.fast is not None  # noqa: S101
        pattern, canonicalize = column.fast
        canonical = canonicalize(texts)
        others = _rows(pc.invert(pc.match_substring_regex(texts, pattern)))
        if not others.size:
            return canonical, {}
        bad: dict[int, Problem] = {}
        replacements: list[str | None] = []
        for row, value in zip(others.tolist(), texts.take(others).to_pylist(), strict=True):
            text: str | None = None
            if value:
                try:
                    text = parse(value)
                except _Bad as error:
                    bad[row] = (error.code, error.message)
            elif not column.optional:
                bad[row] = _REQUIRED
            replacements.append(text)
        mask = np.zeros(len(texts), dtype=bool)
        mask[others] = True
        patched = pc.replace_with_mask(
            canonical, pa.array(mask), pa.array(replacements, pa.string())
        )
        return patched, bad

    def parse(self, first_line: int, chunk: Sequence[Mapping[str, Any]]) -> _Parsed:
        """Validate every field of every row (a bad field rejects the whole row, with every
        problem it has) and compute the valid rows' canonical values, hashes and keys."""
        texts = [_column_texts(chunk, name) for name in self.required]
        # The batch's content hash, over every row as received (stripped), in order.
        self.digest.update(_concatenated(_joined([pa.scalar(""), _joined(texts, "\x1f")], "\x1e")))

        problems: dict[int, list[tuple[str, str, str]]] = {}
        uscc, bad = self._by_distinct(texts[0], self._uscc, optional=False)
        self.prefetch(pc.unique(uscc).drop_null().to_pylist())
        for row, (code, message) in bad.items():
            problems[row] = [("uscc", code, message)]
        values: list[pa.Array] = []
        for column, parse, column_texts in zip(self.columns, self.parsers, texts[1:], strict=True):
            if column.fast is not None:
                canonical, bad = self._fast(column_texts, column, parse)
            else:
                canonical, bad = self._by_distinct(column_texts, parse, column.optional)
            values.append(canonical)
            for row, (code, message) in bad.items():
                problems.setdefault(row, []).append((column.name, code, message))
        if self.source == schema.PUBLIC_CREDIT:
            self._check_date_order(values, problems)

        rejections: list[_Rejection] = []
        invalid_of: list[tuple[str, dict[str, Any]]] = []
        for row in sorted(problems):
            errors = problems[row]
            raw = _raw(chunk[row])
            rejections.extend(
                _Rejection(first_line + row, name, code, message, raw)
                for name, code, message in errors
            )
            if errors[0][0] != "uscc":  # the enterprise is known: minimise once grants are
                invalid_of.append((cast(str, uscc[row].as_py()), raw))
        lines = np.arange(first_line, first_line + len(chunk))
        if problems:
            valid = np.ones(len(chunk), dtype=bool)
            valid[list(problems)] = False
            keep = pa.array(valid)
            uscc = uscc.filter(keep)
            values = [v.filter(keep) for v in values]
            lines = lines[valid]

        encoded = uscc.dictionary_encode()
        canonical_rows = _joined([uscc, *values], "\x1f").cast(pa.binary())
        sha256 = hashlib.sha256
        return _Parsed(
            lines=lines,
            usccs=encoded.dictionary.to_pylist(),
            uscc_index=encoded.indices.to_numpy(zero_copy_only=False),
            uscc=uscc,
            values=values,
            hashes=[sha256(row).hexdigest() for row in canonical_rows.to_pylist()],
            keys=_joined([uscc, *(values[i] for i in self.key_index)], "\x1f").to_pylist(),
            rejections=rejections,
            invalid=len(problems),
            invalid_of=invalid_of,
        )

    @staticmethod
    def _check_date_order(
        values: list[pa.Array], problems: dict[int, list[tuple[str, str, str]]]
    ) -> None:
        """Public credit: publication end and repair come on or after the decision (checked
        only on rows with no other problem; ISO dates compare as text)."""
        decided = values[3]
        clean = set(range(len(decided))) - set(problems)
        for index, name in ((4, "publication_ends_on"), (5, "repaired_on")):
            other = values[index]
            for row in _rows(pc.less(other, decided)).tolist():
                if row in clean:
                    message = f"{other[row].as_py()} is before {decided[row].as_py()}."
                    problems.setdefault(row, []).append((name, "date_order", message))

    # Authorization ------------------------------------------------------------------

    def _lookup(self, usccs: set[str]) -> None:
        new = sorted(u for u in usccs if u not in self.enterprise_ids)
        if new:
            self._merge(self._fetch(new, []))

    def _fetch(self, new: list[str], unloaded: list[str]) -> _Found:
        """The database's answers for a chunk's enterprises: the ids and live collection
        windows of ``new`` (USCCs not looked up before) and, with the latest versions of
        their stored records, those among them whose rows may be stored — and
        ``unloaded`` (looked up before, versions not yet read).

        Reads only (the reader, or the session); changes nothing of ``self``, so that it
        may run in the lookup thread while the chunk is validated (see :meth:`prefetch`)."""
        found = _Found()
        size = 5000 if self.postgres else 900
        for start in range(0, len(new), size):
            part = new[start : start + size]
            ids: dict[str, int]
            if self.postgres:  # one array parameter: no statement of thousands of them
                with self._driver().cursor() as cursor:
                    cursor.execute(
                        "SELECT uscc, id FROM enterprise WHERE uscc = ANY(%s::varchar[])", (part,)
                    )
                    ids = dict(cursor.fetchall())
            else:
                query = sa.select(Enterprise.uscc, Enterprise.id).where(Enterprise.uscc.in_(part))
                ids = {row.uscc: row.id for row in self._read().execute(query)}
            for uscc in part:
                found.enterprise_ids[uscc] = ids.get(uscc)
            if self.scope is not None:
                registered = [u for u in part if ids.get(u) is not None]
                windows = (
                    authorization.collection_windows(
                        self.scope, registered, now=self.now, connection=self.reader
                    )
                    if registered
                    else {}
                )
                for uscc in part:
                    found.windows[uscc] = windows.get(uscc)
        collectable = [
            u
            for u in new
            if found.enterprise_ids[u] is not None
            and (self.scope is None or found.windows[u] is not None)
        ]
        found.loaded = sorted({*collectable, *unloaded})
        found.latest = self._stored_versions(found.loaded)
        return found

    def _merge(self, found: _Found) -> None:
        """Keep what :meth:`_fetch` found (the batch's own versions come first)."""
        self.enterprise_ids.update(found.enterprise_ids)
        self.windows.update(found.windows)
        for key, (version, digest) in found.latest.items():
            if key not in self.latest:
                self.latest[key] = version
                self.latest_hash[key] = digest
        self.loaded.update(found.loaded)

    def prefetch(self, usccs: Iterable[str]) -> None:
        """With a reader: start looking up these enterprises (those of the chunk being
        validated) in the lookup thread; :meth:`apply` waits for the answers. The lookups
        wait on the database while this thread validates (they are a few round trips per
        chunk, each slowed by the COPY the database runs meanwhile)."""
        if self.lookups is None:
            return
        new = sorted(u for u in usccs if u not in self.enterprise_ids)
        unloaded = sorted(
            u
            for u in usccs
            if u in self.enterprise_ids and u not in self.loaded and self._collectable(u)
        )
        if new or unloaded:
            self.prefetched = self.lookups.submit(self._fetch, new, unloaded)

    def _collectable(self, uscc: str) -> bool:
        if self.enterprise_ids.get(uscc) is None:
            return False
        return self.scope is None or self.windows.get(uscc) is not None

    def _minimise_invalid(self, invalid_of: list[tuple[str, dict[str, Any]]]) -> None:
        """Keep only the key of an invalid row whose enterprise may not be collected."""
        keep = (*self.key_columns, schema.PERIOD_COLUMN[self.source])
        for uscc, raw in invalid_of:
            unknown = self.enterprise_ids.get(uscc) is None
            if unknown or (self.scope is not None and self.windows.get(uscc) is None):
                for name in list(raw):
                    if name not in keep:
                        del raw[name]

    def _window_bounds(self, usccs: list[str]) -> tuple[list[str | None], list[str | None]]:
        """Per USCC, the first and last period its live collection grant covers, as text
        that compares like the periods ('YYYY' or 'YYYY-MM'), or None without a grant."""
        shape = "%Y" if self.source == schema.TAX_CREDIT_RATING else "%Y-%m"
        lows: list[str | None] = []
        highs: list[str | None] = []
        for uscc in usccs:
            window = self.windows.get(uscc)
            lows.append(None if window is None else window.data_from.strftime(shape))
            highs.append(None if window is None else window.data_to.strftime(shape))
        return lows, highs

    def _redacted(self, parsed: _Parsed, row: int) -> dict[str, Any]:
        raw: dict[str, Any] = {"uscc": parsed.uscc[row].as_py()}
        for key in (*self.key_columns[1:], schema.PERIOD_COLUMN[self.source]):
            raw[key] = parsed.values[self.names.index(key)][row].as_py()
        return raw

    def _authorize(
        self, parsed: _Parsed, enterprise_ids: np.ndarray
    ) -> tuple[np.ndarray, list[_Rejection]]:
        """Reject the rows of unregistered enterprises, and (but for public credit) those
        without a live collection grant for the scope or outside its months; only their key
        is kept. Returns the positions of the rows that may be stored, and the rejections."""
        unknown = enterprise_ids == 0
        refused = np.zeros(len(enterprise_ids), dtype=bool)
        lows: list[str | None] = []
        highs: list[str | None] = []
        if self.scope is not None and len(enterprise_ids):
            lows, highs = self._window_bounds(parsed.usccs)
            take = pa.array(parsed.uscc_index)
            period = parsed.values[self.period_index]
            low = pa.array(lows, pa.string()).take(take)
            high = pa.array(highs, pa.string()).take(take)
            outside = pc.or_kleene(pc.less(period, low), pc.greater(period, high))
            refused = ~unknown & pc.or_kleene(pc.is_null(low), outside).to_numpy(
                zero_copy_only=False
            )
        if not (unknown.any() or refused.any()):
            return np.arange(len(enterprise_ids)), []
        rejections: list[_Rejection] = []
        for row in _rows(unknown | refused).tolist():
            uscc = parsed.usccs[parsed.uscc_index[row]]
            line = int(parsed.lines[row])
            self.rejected_rows += 1
            if unknown[row]:
                message = f"{uscc} is not registered on the platform; not stored."
                rejections.append(
                    _Rejection(
                        line, "uscc", "unknown_enterprise", message, self._redacted(parsed, row)
                    )
                )
                continue
            self._counts(int(enterprise_ids[row])).refused += 1
            window = self.windows.get(uscc)
            if window is None:
                code, message = (
                    "no_grant",
                    f"No live collection grant for {self.scope}; not stored.",
                )
            else:
                period = parsed.values[self.period_index][row].as_py()
                code = "outside_data_range"
                message = (
                    f"{period} is outside the authorized months "
                    f"{window.data_from:%Y-%m}..{window.data_to:%Y-%m}; not stored."
                )
            rejections.append(_Rejection(line, None, code, message, self._redacted(parsed, row)))
        return _rows(~(unknown | refused)), rejections

    # Versions -----------------------------------------------------------------------

    def _load_latest(self, usccs: list[str]) -> None:
        """Read the latest version of the stored records of these enterprises."""
        if usccs:
            self._merge(_Found(latest=self._stored_versions(usccs), loaded=usccs))

    def _stored_versions(self, usccs: list[str]) -> dict[str, tuple[int, str]]:
        """The latest (version, content hash) of every stored record of these enterprises,
        by natural key.

        On PostgreSQL the lookup goes enterprise by enterprise through the unique index
        (a LATERAL subquery behind an ``OFFSET 0`` fence): a plain ``uscc IN (...)`` over
        a table that just grew by a million rows and has no fresh statistics is planned as
        a sequential scan per chunk, which made large batches quadratic. The server joins
        the key (as :meth:`parse` does) and psycopg's own cursor reads the rows, which a
        batch of corrections or re-sent months has by the hundred thousand.
        """
        found: dict[str, tuple[int, str]] = {}
        wanted = sorted(usccs)
        if self.postgres:
            keys = ", ".join(f't."{k}"' for k in self.key_columns)
            columns = ", ".join(f'r."{k}"' for k in (*self.key_columns, "version", "content_hash"))
            # Identifiers come from the models, never from input; the USCCs are a bound
            # array (hence the noqa/nosec for string-built SQL).
            lateral = (
                f"SELECT concat_ws(E'\\x1f', {keys}), t.version, t.content_hash "  # noqa: S608  # nosec B608
                f"FROM unnest(%(usccs)s::varchar[]) AS u(uscc) "
                f'CROSS JOIN LATERAL (SELECT {columns} FROM "{self.model.__tablename__}" AS r '
                f"WHERE r.uscc = u.uscc OFFSET 0) AS t"
            )
            connection = self._driver()
            for start in range(0, len(wanted), 20_000):
                with connection.cursor() as cursor:
                    cursor.execute(lateral, {"usccs": wanted[start : start + 20_000]})
                    for key, version, digest in cursor:
                        current = found.get(key)
                        if current is None or version > current[0]:
                            found[key] = (version, digest)
        else:
            table = self.model.__table__
            key_cols = [table.c[k] for k in self.key_columns]
            width = len(key_cols)
            for start in range(0, len(wanted), 900):
                stmt = sa.select(*key_cols, table.c.version, table.c.content_hash).where(
                    table.c.uscc.in_(wanted[start : start + 900])
                )
                for record in db.session.execute(stmt):
                    key = "\x1f".join([str(v) for v in record[:width]])
                    version, digest = record[-2], record[-1]
                    current = found.get(key)
                    if current is None or version > current[0]:
                        found[key] = (version, digest)
        return found

    # The chunk ----------------------------------------------------------------------

    def _read(self) -> Any:
        return self.reader if self.reader is not None else db.session

    def _driver(self) -> psycopg.Connection[Any]:
        """PostgreSQL: the psycopg connection lookups go to (the reader's, or the
        session's)."""
        reader = self.reader
        connection = (
            reader.connection if reader is not None else db.session.connection().connection
        ).driver_connection
        assert connection is not None  # noqa: S101
        return cast(psycopg.Connection[Any], connection)

    def apply(self, parsed: _Parsed) -> None:
        """Check a parsed chunk against the platform, then store what may be stored: new
        records as version 1, changed ones as the next version, duplicates not at all.

        With a reader, the checks run while the previous chunks are still being stored,
        and this chunk's rows are added to the same COPY; without one they wait for it (the
        session's connection is busy) and each chunk has a COPY of its own."""
        if self.reader is None:
            self.finish()
        prefetched, self.prefetched = self.prefetched, None
        if prefetched is not None:
            self._merge(prefetched.result())
        self.rejected_rows += parsed.invalid
        self._lookup(set(parsed.usccs) | {uscc for uscc, _ in parsed.invalid_of})
        self._minimise_invalid(parsed.invalid_of)
        ids = np.array([self.enterprise_ids.get(u) or 0 for u in parsed.usccs], dtype=np.int64)
        enterprise_ids = ids[parsed.uscc_index] if len(parsed.keys) else ids[:0]
        authorized, refused = self._authorize(parsed, enterprise_ids)
        stored: list[int] = []
        versions: list[int] = []
        if authorized.size:
            stored, versions = self._versions(parsed, authorized, enterprise_ids)
        data = None
        if stored and self.postgres:
            data = self._copy_data(
                parsed, np.array(stored, dtype=np.int64), enterprise_ids, versions
            )
        if self.reader is None:  # one COPY per chunk, finished before the next lookups
            self._store_rejections([*parsed.rejections, *refused])
            if data is not None:
                self.pending = self._start_copy(data)
            elif stored:
                self._store(parsed, np.array(stored, dtype=np.int64), enterprise_ids, versions)
            return
        # With a reader, one COPY goes on from chunk to chunk; rejected rows wait for it to
        # end (at the end of the batch, or once REJECTIONS_HELD of them wait).
        self.held.extend(parsed.rejections)
        self.held.extend(refused)
        if len(self.held) >= REJECTIONS_HELD:
            self.finish()
        if data is None:
            return
        if self.pending is None:
            self.pending = self._start_copy(data)
        else:
            self.pending.write(data)

    def _start_copy(self, data: memoryview) -> _PendingCopy:
        return _PendingCopy(
            self.model.__tablename__, self.copy_columns, data, binary=self.binary is not None
        )

    def _versions(
        self, parsed: _Parsed, authorized: np.ndarray, enterprise_ids: np.ndarray
    ) -> tuple[list[int], list[int]]:
        """Compare each authorized row with the latest version of its key: the rows to
        store and their versions (identical content is a duplicate and is not stored)."""
        present = np.zeros(len(parsed.usccs), dtype=bool)
        present[parsed.uscc_index[authorized]] = True
        self._load_latest(
            [u for u, p in zip(parsed.usccs, present, strict=True) if p and u not in self.loaded]
        )
        latest, latest_hash = self.latest, self.latest_hash
        keys, hashes = parsed.keys, parsed.hashes
        rows = authorized.tolist()
        # The common case at once: no key of these rows is stored or was seen before in the
        # batch, and none comes twice; then every row is stored as version 1.
        every = len(rows) == len(keys)
        first = dict.fromkeys(keys if every else [keys[row] for row in rows], 1)
        if len(first) == len(rows) and latest.keys().isdisjoint(first):
            latest.update(first)
            latest_hash.update(
                zip(first, hashes if every else [hashes[row] for row in rows], strict=True)
            )
            self._count(enterprise_ids[authorized], "accepted")
            return rows, [1] * len(rows)
        stored: list[int] = []
        versions: list[int] = []
        duplicates: list[int] = []
        for row in rows:
            key, digest = keys[row], hashes[row]
            previous = latest.get(key)
            if previous is None:
                version = 1
            elif latest_hash[key] == digest:
                duplicates.append(row)
                continue
            else:
                version = previous + 1
            latest[key] = version
            latest_hash[key] = digest
            stored.append(row)
            versions.append(version)
        self._count(enterprise_ids[duplicates], "duplicates")
        new = np.array(versions, dtype=np.int64) == 1
        self._count(enterprise_ids[stored][new], "accepted")
        self._count(enterprise_ids[stored][~new], "corrected")
        return stored, versions

    def finish(self) -> None:
        """Wait for the COPY to be stored (raises its IntegrityError, if any), then store
        the rejected rows held meanwhile."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.finish()
        held, self.held = self.held, []
        self._store_rejections(held)

    def abort(self, exc: BaseException) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.abort(exc)

    def close(self) -> None:
        """End the lookup thread (after its lookup in flight, if any: the reader is closed
        next)."""
        if self.lookups is not None:
            self.lookups.shutdown(wait=True, cancel_futures=True)

    def _counts(self, enterprise_id: int) -> _Counts:
        counts = self.per_enterprise.get(enterprise_id)
        if counts is None:
            counts = self.per_enterprise[enterprise_id] = _Counts()
        return counts

    def _count(self, enterprise_ids: np.ndarray, outcome: str) -> None:
        if not enterprise_ids.size:
            return
        ids, counts = np.unique(enterprise_ids, return_counts=True)
        for enterprise_id, count in zip(ids.tolist(), counts.tolist(), strict=True):
            counts_of = self._counts(enterprise_id)
            setattr(counts_of, outcome, getattr(counts_of, outcome) + count)

    # Writing ------------------------------------------------------------------------

    def _copy_data(
        self, parsed: _Parsed, rows: np.ndarray, enterprise_ids: np.ndarray, versions: list[int]
    ) -> memoryview:
        """PostgreSQL: the ``COPY`` data of these rows, binary or text (no database
        needed)."""
        columns = [parsed.uscc, *parsed.values, pa.array(parsed.hashes, pa.string())]
        if len(rows) < len(parsed.keys):
            take = pa.array(rows)
            columns = [c.take(take) for c in columns]
        *values, hashes = columns
        if self.binary is not None:
            return self.binary.tuples(values, enterprise_ids[rows], versions, hashes)
        lines = _joined(
            [
                *values,
                pa.array(enterprise_ids[rows]).cast(pa.string()),
                pa.scalar(_copy_text(self.provider)),
                pa.scalar(str(self.batch.id)),
                pa.array(versions, pa.int64()).cast(pa.string()),
                hashes,
                pa.scalar(self.now.isoformat() + "\n"),
            ],
            "\t",
            null="\\N",
        )
        return _concatenated(lines)

    def _store(
        self, parsed: _Parsed, rows: np.ndarray, enterprise_ids: np.ndarray, versions: list[int]
    ) -> None:
        """SQLite: insert these rows with ``executemany``."""
        take = pa.array(rows)
        uscc = parsed.uscc.take(take)
        values = [v.take(take) for v in parsed.values]
        hashes = pa.array([parsed.hashes[i] for i in rows.tolist()], pa.string())
        columns: dict[str, list[Any]] = {"uscc": uscc.to_pylist()}
        for column, array in zip(self.columns, values, strict=True):
            convert = column.to_python
            columns[column.name] = [None if v is None else convert(v) for v in array.to_pylist()]
        names = list(columns)
        params = [
            {
                **dict(zip(names, record, strict=True)),
                "enterprise_id": enterprise_id,
                "provider": self.provider,
                "batch_id": self.batch.id,
                "version": version,
                "content_hash": digest,
                "received_at": self.now,
            }
            for *record, enterprise_id, version, digest in zip(
                *columns.values(),
                enterprise_ids[rows].tolist(),
                versions,
                hashes.to_pylist(),
                strict=True,
            )
        ]
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


# PostgreSQL's binary COPY format (the ``COPY`` page of its manual, "Binary Format"): a
# header, then per row a 16-bit count of fields and each field as a 32-bit length (-1 for
# NULL) followed by the value in its type's binary representation, then a trailer. All
# integers are big-endian.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, extension length
_BINARY_TRAILER = b"\xff\xff"
_BINARY_NULL = b"\xff\xff\xff\xff"
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # of timestamptz: microseconds since
_PG_EPOCH_DAYS = (dt.date(2000, 1, 1) - dt.date(1970, 1, 1)).days  # of date: days since
_MONEY_SCALE = 2

_LENGTH = np.dtype([("length", ">i4")])
_BOOL = np.dtype([("length", ">i4"), ("value", "u1")])
_INT4 = np.dtype([("length", ">i4"), ("value", ">i4")])
_INT8 = np.dtype([("length", ">i4"), ("value", ">i8")])
# NUMERIC: the count of base-10000 digits, the weight of the first one, the sign, the
# display scale, then the digits — without leading or trailing zero digits, as PostgreSQL
# keeps them (its own ``numeric_send`` gives the same bytes). An amount (at most 16 digits
# before the point, two after) has at most five: four before the point, one after.
_NUMERIC = np.dtype(
    [("length", ">i4"), ("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">u2"),
     ("dscale", ">i2"), ("digits", ">i2", (5,))]
)  # fmt: skip
_NUMERIC_HEAD = 12  # bytes before the digits: the field's length and the four words


def _pg_type(column: sa.Column[Any]) -> str:
    """The binary representation a record column needs (raises for a type not handled)."""
    kind = column.type
    if isinstance(kind, sa.types.TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, sa.DateTime) and kind.timezone:
        return "timestamptz"
    if isinstance(kind, sa.Date) and not isinstance(kind, sa.DateTime):
        return "date"
    if isinstance(kind, sa.Boolean):
        return "bool"
    if isinstance(kind, sa.BigInteger):
        return "int8"
    if isinstance(kind, sa.Integer):
        return "int4"
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
        if kind.scale == _MONEY_SCALE and (kind.precision or 0) <= 18:
            return "money"
    elif isinstance(kind, sa.String):
        return "text"
    raise TypeError(f"{column}: no binary COPY encoding for {column.type!r}")


def _fixed_width(fields: np.ndarray) -> pa.Array:
    """A binary array holding each element of a structured array as its bytes."""
    width = fields.dtype.itemsize
    offsets = np.arange(0, (len(fields) + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(fields)
    return pa.Array.from_buffers(
        pa.binary(), len(fields), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _null_where(values: pa.Array, fields: pa.Array) -> pa.Array:
    """``fields``, but the NULL field (length -1) where ``values`` is null."""
    if not values.null_count:
        return fields
    return pc.if_else(pc.is_null(values), pa.scalar(_BINARY_NULL, pa.binary()), fields)


def _binary_ints(kind: str, values: np.ndarray) -> pa.Array:
    fields = np.empty(len(values), _INT4 if kind == "int4" else _INT8)
    fields["length"] = fields.dtype["value"].itemsize
    if kind == "int4" and len(values) and (values.min() < -(2**31) or values.max() >= 2**31):
        raise OverflowError("a value does not fit a 4-byte integer column")
    fields["value"] = values
    return _fixed_width(fields)


def _binary_field(kind: str, texts: pa.Array) -> pa.Array:
    """The binary COPY fields (length included) of a column's canonical texts (as
    :meth:`_Ingestion.parse` makes them; null: an empty optional value)."""
    if kind == "text":
        return pc.binary_join_element_wise(
            *_binary_text(texts), pa.scalar(b"", pa.binary()),
            null_handling="replace", null_replacement=b"",
        )  # fmt: skip
    if kind in ("int4", "int8"):
        ints = pc.cast(texts, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        return _null_where(texts, _binary_ints(kind, ints))
    if kind == "bool":
        fields = np.empty(len(texts), _BOOL)
        fields["length"] = 1
        fields["value"] = pc.equal(texts, "1").fill_null(False).to_numpy(zero_copy_only=False)
        return _null_where(texts, _fixed_width(fields))
    if kind == "date":
        days = pc.cast(pc.cast(texts, pa.date32()), pa.int32()).fill_null(0)
        fields = np.empty(len(texts), _INT4)
        fields["length"] = 4
        fields["value"] = days.to_numpy(zero_copy_only=False) - _PG_EPOCH_DAYS
        return _null_where(texts, _fixed_width(fields))
    if kind == "money":
        return _null_where(texts, _binary_money(texts))
    raise TypeError(f"no binary COPY encoding from text for {kind}")


def _binary_text(texts: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A text column's fields as two parts, the lengths and the texts: a null's length is
    -1 and its text must be left out (joined as b"")."""
    lengths = np.empty(len(texts), _LENGTH)
    lengths["length"] = pc.binary_length(texts).fill_null(-1).to_numpy(zero_copy_only=False)
    return _fixed_width(lengths), texts.cast(pa.binary())


def _binary_money(texts: pa.Array) -> pa.Array:
    """NUMERIC fields of canonical amounts (digits, a point, two decimals: at most 16
    digits before it). The texts are read as decimal(18, 2) (an error, not a rounding,
    should one have more decimals); its unscaled value, the amount in fen (cents), is the
    low 64 bits of each 128-bit value."""
    decimals = pc.cast(texts, pa.decimal128(18, _MONEY_SCALE))
    words = np.frombuffer(decimals.buffers()[1], dtype="<i8")
    start = 2 * decimals.offset
    cents = words[start : start + 2 * len(decimals) : 2]
    if decimals.null_count:
        cents = np.where(pc.is_null(decimals).to_numpy(zero_copy_only=False), 0, cents)
    if len(cents) and cents.min() < 0:
        raise ValueError("amounts are never negative")
    whole, fraction = np.divmod(cents, 100)
    count = len(cents)
    fields = np.empty(count, _NUMERIC)
    fields["sign"] = 0  # positive (NUMERIC_POS)
    fields["dscale"] = _MONEY_SCALE
    digits = np.empty((count, 5), dtype=np.int16)  # of weight 3 down to -1
    digits[:, 0] = whole // 10**12
    digits[:, 1] = whole // 10**8 % 10**4
    digits[:, 2] = whole // 10**4 % 10**4
    digits[:, 3] = whole % 10**4
    digits[:, 4] = fraction * 100
    fields["digits"] = digits
    # The digits kept: from the first non-zero one (lead) to the last (trail - 1).
    nonzero = digits != 0
    lead = nonzero.argmax(axis=1)
    trail = 5 - nonzero[:, ::-1].argmax(axis=1)
    ndigits = np.where(nonzero[np.arange(count), lead], trail - lead, 0)  # 0: a zero
    fields["length"] = _NUMERIC_HEAD - 4 + 2 * ndigits
    fields["ndigits"] = ndigits
    fields["weight"] = np.where(ndigits > 0, 3 - lead, 0)
    # Each field: the 12 bytes before the digits, then the kept digits' bytes.
    matrix = fields.view(np.uint8).reshape(count, _NUMERIC.itemsize)
    position = np.arange(_NUMERIC.itemsize)
    first = (_NUMERIC_HEAD + 2 * lead)[:, None]
    keep = (position < _NUMERIC_HEAD) | (
        (position >= first) & (position < first + 2 * ndigits[:, None])
    )
    offsets = np.zeros(count + 1, dtype=np.int32)
    np.cumsum(_NUMERIC_HEAD + 2 * ndigits, out=offsets[1:])
    return pa.Array.from_buffers(
        pa.binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(matrix[keep])]
    )


def _binary_constant(kind: str, value: Any) -> pa.Scalar:
    """One field (length included) holding ``value``, for a column the same in every row."""
    if kind == "text":
        data = str(value).encode()
    elif kind == "int4":
        data = struct.pack(">i", value)
    elif kind == "int8":
        data = struct.pack(">q", value)
    elif kind == "timestamptz":
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware UTC times")
        data = struct.pack(">q", (value - _PG_EPOCH) // dt.timedelta(microseconds=1))
    else:
        raise TypeError(f"no binary COPY encoding of a constant for {kind}")
    return pa.scalar(struct.pack(">i", len(data)) + data, pa.binary())


class _BinaryRows:
    """A record table's rows as tuples of the binary COPY format, made column by column
    (pyarrow and numpy: no Python object per value). The columns are ``columns``: ``uscc``,
    the source's data columns (canonical text in), then ``enterprise_id``, ``provider``,
    ``batch_id``, ``version``, ``content_hash`` and ``received_at``.

    Kept rather than psycopg's own binary COPY (``set_types`` + ``write_row``, psycopg_c),
    measured 7 Dec 2026 on the 2 vCPU shared VM (bench/README.md, "psycopg's write_row
    compared"): that path needs a Python object per value (a ``Decimal`` per amount) and
    costs the client about four times the CPU — for 50k tax rows 277 ms against 67 ms (200k:
    1,159 against 269 ms) — and ``ingest_rows`` of 50k tax rows did 55k rows/s with it
    against 70k with this (client CPU 609 against 361 ms; medians of 18 batches each).
    The stored rows were identical."""

    def __init__(
        self,
        table: sa.Table,
        columns: Sequence[str],
        provider: str,
        batch_id: int,
        now: dt.datetime,
    ) -> None:
        kinds = {name: _pg_type(table.c[name]) for name in columns}
        meta = ("enterprise_id", "provider", "batch_id", "version", "content_hash", "received_at")
        if tuple(columns[-len(meta) :]) != meta:
            raise ValueError(f"unexpected record columns {columns}")
        self.text_kinds = [kinds[name] for name in columns[: -len(meta)]]  # uscc + data
        self.enterprise_kind = kinds["enterprise_id"]
        self.version_kind = kinds["version"]
        if kinds["content_hash"] != "text":
            raise TypeError("content_hash is expected to be text")
        self.head = pa.scalar(struct.pack(">h", len(columns)), pa.binary())
        self.provider = _binary_constant(kinds["provider"], provider)
        self.batch_id = _binary_constant(kinds["batch_id"], batch_id)
        self.received_at = _binary_constant(kinds["received_at"], now)

    def tuples(
        self,
        texts: Sequence[pa.Array],
        enterprise_ids: np.ndarray,
        versions: Sequence[int],
        hashes: pa.Array,
    ) -> memoryview:
        """The tuples of these rows (``texts``: ``uscc`` and the data columns, canonical
        text; the others one value per row), one after the other."""
        fields: list[pa.Array | pa.Scalar] = []
        for kind, column in zip(self.text_kinds, texts, strict=True):
            # Text columns as two parts, so that every row is made by one join.
            fields.extend(_binary_text(column) if kind == "text" else [_binary_field(kind, column)])
        fields.append(_binary_ints(self.enterprise_kind, enterprise_ids))
        fields.extend((self.provider, self.batch_id))
        fields.append(_binary_ints(self.version_kind, np.asarray(versions, dtype=np.int64)))
        fields.extend(_binary_text(hashes))
        fields.append(self.received_at)
        rows = pc.binary_join_element_wise(
            self.head, *fields, pa.scalar(b"", pa.binary()),
            null_handling="replace", null_replacement=b"",
        )  # fmt: skip
        return _concatenated(rows)


def _copy_text(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy(table: str, columns: list[str], lines: list[str]) -> None:
    """``COPY`` text-format ``lines`` into ``table`` on the session's own connection (and so
    in its transaction), waiting until it is stored."""
    _PendingCopy(table, columns, memoryview("".join(lines).encode())).finish()


def _batch_hash(source: str, rows: Iterable[Mapping[str, Any]], columns: tuple[str, ...]) -> str:
    digest = hashlib.sha256(source.encode())
    for row in rows:
        texts = [v.strip() if type(v) is str else _text(v) for v in map(row.get, columns)]
        digest.update(("\x1e" + "\x1f".join(texts)).encode())
    return digest.hexdigest()


def _reader() -> sa.Connection | None:
    """On PostgreSQL, a second connection for the batch's lookups (enterprises, grants,
    stored versions), so they run while the session's connection stores the previous
    chunk — but only when the caller's transaction has written nothing yet: then what is
    committed is exactly what the session sees (the batch's own writes are tracked in
    memory), and the lookups may be read from anywhere. A transaction that has (an
    enterprise registered and its records ingested at once, say) does its lookups on the
    session, after each COPY."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    db.session.flush()  # pending changes count as writes
    fresh = db.session.execute(sa.text("SELECT pg_current_xact_id_if_assigned() IS NULL"))
    if not fresh.scalar():
        return None
    return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


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

    reader = _reader()
    try:
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

        work = _Ingestion(source, batch, provider, now, reader)
        line = first_line
        total = 0
        with _cyclic_gc_paused():
            try:
                for chunk in _chunks(all_rows(), CHUNK_ROWS):
                    # Parsing this chunk overlaps the database storing the previous one
                    # (and, with a reader, looking up this chunk's enterprises).
                    work.apply(work.parse(line, chunk))
                    line += len(chunk)
                    total += len(chunk)
                work.finish()
            except BaseException as exc:
                work.abort(exc)
                raise
            finally:
                work.close()
    finally:
        if reader is not None:
            reader.close()

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
    ids = sorted(work.per_enterprise)
    if not ids:
        return
    # The columns of the per-enterprise events, chained exactly as audit.record chains an
    # AuditEvent (no ORM object per event: a batch can touch a hundred thousand
    # enterprises). Only these differ from one event to the next: _SLOTS.
    shared = {
        "occurred_at": now,
        "actor_user_id": user.id if user else None,
        "actor_org_id": user.organization_id if user else None,
        "action": "ingestion.batch",
        "scope": work.scope or batch.source,
        "object_type": "ingestion_batch",
        "object_id": str(batch.id),
    }
    slots: list[tuple[int, ...]] = []
    for seq, enterprise_id in enumerate(ids, head.seq + 1):
        counts = work.per_enterprise[enterprise_id]
        stored = counts.accepted + counts.corrected
        slots.append(
            (seq, enterprise_id, stored, counts.corrected, counts.duplicates, counts.refused)
        )

    def event(values: Sequence[Any], prev_hash: str) -> dict[str, Any]:
        """The columns of one event (``values``: its _SLOTS but the hashes), hash included."""
        seq, enterprise_id, stored, corrected, duplicates, refused = values
        record = SimpleNamespace(
            **shared,
            seq=seq,
            enterprise_id=enterprise_id,
            details={
                **common,
                "stored": stored,
                "corrected": corrected,
                "duplicates": duplicates,
                "refused": refused,
            },
            prev_hash=prev_hash,
        )
        record.hash = audit.chain_hash(prev_hash, cast(AuditEvent, record))
        return {name: getattr(record, name) for name in _AUDIT_COLUMNS}

    if work.postgres:
        lines = _audit_lines(shared, common, slots, head.hash, event)
        if lines is not None:
            _copy(AuditEvent.__tablename__, list(_AUDIT_COLUMNS), lines)
            return
    params = []
    prev_hash = head.hash
    for values in slots:
        params.append(event(values, prev_hash))
        prev_hash = params[-1]["hash"]
    if work.postgres:
        # Only these differ from one event to the next; the others are written once.
        varying = {"seq", "enterprise_id", "details", "prev_hash", "hash"}
        fixed = {n: _copy_value(params[0][n]) for n in _AUDIT_COLUMNS if n not in varying}
        _copy(
            AuditEvent.__tablename__,
            list(_AUDIT_COLUMNS),
            [
                "\t".join(
                    [fixed[n] if n in fixed else _copy_value(record[n]) for n in _AUDIT_COLUMNS]
                )
                + "\n"
                for record in params
            ],
        )
    else:
        db.session.execute(sa.insert(cast(sa.Table, AuditEvent.__table__)), params)


# What varies from one per-enterprise event of a batch to the next. The canonical JSON of
# the events (and their COPY lines) are made from one template with a ``str.format`` field
# per slot: the template is the text of a sample event holding the JSON string
# "\ue000name\ue000" (private-use characters) where a slot's value goes. Should another
# value of the batch hold such a string too, the first event made from the template is not
# the one made on its own, and the events are made one by one (see _audit_lines).
_SLOTS = ("seq", "enterprise_id", "stored", "corrected", "duplicates", "refused")
_SLOT = re.compile(f'"\ue000({"|".join(_SLOTS)})\ue000"')


def _slot(name: str) -> str:
    return f"\ue000{name}\ue000"


def _formatter(text: str) -> str:
    """``text`` (holding slots) as a ``str.format`` string taking the _SLOTS' values."""
    pieces = _SLOT.split(text)
    for index in range(0, len(pieces), 2):
        pieces[index] = pieces[index].replace("{", "{{").replace("}", "}}")
    for index in range(1, len(pieces), 2):
        pieces[index] = f"{{{_SLOTS.index(pieces[index])}}}"
    return "".join(pieces)


def _audit_lines(
    shared: dict[str, Any],
    common: dict[str, Any],
    slots: list[tuple[int, ...]],
    head_hash: str,
    event: Callable[[Sequence[Any], str], dict[str, Any]],
) -> list[str] | None:
    """The COPY lines of the per-enterprise events (``slots``: their _SLOTS values, ints),
    chained behind ``head_hash``; the same as ``event`` makes them, from templates (the
    first event is made both ways and compared: None, should they differ)."""
    details = {**common, **{name: _slot(name) for name in _SLOTS[2:]}}
    sample = SimpleNamespace(
        **shared, seq=_slot("seq"), enterprise_id=_slot("enterprise_id"), details=details
    )
    canonical = _formatter(audit.canonical(cast(AuditEvent, sample))).format
    columns = {
        **{name: _copy_value(value).replace("{", "{{").replace("}", "}}")
           for name, value in shared.items()},
        "seq": "{0}",
        "enterprise_id": "{1}",
        "details": _formatter(_copy_value(details)),
        "prev_hash": "{6}",
        "hash": "{7}",
    }  # fmt: skip
    line = ("\t".join(columns[name] for name in _AUDIT_COLUMNS) + "\n").format
    lines = []
    sha256 = hashlib.sha256
    prev_hash = head_hash
    for values in slots:
        digest = sha256((prev_hash + canonical(*values)).encode()).hexdigest()
        lines.append(line(*values, prev_hash, digest))
        prev_hash = digest
    first = event(slots[0], head_hash)
    if lines[0] != "\t".join([_copy_value(first[n]) for n in _AUDIT_COLUMNS]) + "\n":
        return None
    return lines


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
