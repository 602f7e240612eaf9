"""Declarative base, the Flask-SQLAlchemy handle and column types shared by every model."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, registry

# Stable constraint names, so Alembic autogenerate produces the same names on SQLite and
# PostgreSQL and migrations can drop/alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp that is always stored and returned as timezone-aware UTC.

    PostgreSQL keeps it as ``timestamptz``; SQLite has no time zones, so values are stored
    as naive UTC and given their zone back on load. Naive datetimes are refused on the way
    in: a naive value is a bug (whose local time is it?), not something to guess about.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware UTC times")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def value_enum(enum_cls: type[enum.Enum], length: int) -> sa.Enum:
    """A Python enum stored by its values ("bank", not "BANK") in a VARCHAR(``length``),
    the same on SQLite and PostgreSQL; unknown strings are refused on the way in."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    # One explicit registry (rather than ``metadata`` + ``type_annotation_map`` attributes):
    # Flask-SQLAlchemy subclasses this base, and SQLAlchemy 2.1 refuses a per-subclass map.
    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={dt.datetime: UTCDateTime()},
    )


db = SQLAlchemy(model_class=Base)
