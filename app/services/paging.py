"""A page of a list query and the list's total, read in SQL (a bank's loans and
applications grow with a province's lending: never read whole to show fifty)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from models import db

T = TypeVar("T")
PER_PAGE = 50


@dataclass
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int  # from 1
    pages: int


def page_of(
    query: sa.Select[Any], page: int, per_page: int = PER_PAGE, clamp: bool = True
) -> Page[Any]:
    """Page ``page`` of ``query``'s entities (ordered by it: give it a unique last order
    key, so no row moves between pages), and how many the query has in all. A page past
    the end is the last one, or (``clamp`` false, as the Open API answers) empty."""
    total = int(
        db.session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
        or 0
    )
    page, pages = _window(page, total, per_page, clamp)
    items = list(db.session.scalars(query.offset((page - 1) * per_page).limit(per_page)))
    return Page(items, total, page, pages)


def _window(page: int, total: int, per_page: int, clamp: bool = True) -> tuple[int, int]:
    """The page to show (from 1; past the end: the last, or as asked if not ``clamp``) and
    how many pages ``total`` items make."""
    pages = max(1, -(-total // per_page))
    return (min(max(page, 1), pages) if clamp else max(page, 1)), pages


def page_of_list(items: list[T], page: int, per_page: int = PER_PAGE) -> Page[T]:
    """Page ``page`` (past the end: the last) of a list already in memory — for a list
    that is filtered in Python after its query (a bank's needs, matched to its products)."""
    page, pages = _window(page, len(items), per_page)
    return Page(items[(page - 1) * per_page : page * per_page], len(items), page, pages)
