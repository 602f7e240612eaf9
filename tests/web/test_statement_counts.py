"""No N+1 on list pages: the number of SQL statements a list page sends does not grow with
the number of rows it lists (counted with an SQLAlchemy event listener on a demo seeded
small, then seeded again three times larger)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.support.list_pages import PAGES, Visitor, seed


@pytest.fixture
def seeded(pg_app: Flask) -> Iterator[Flask]:
    yield pg_app


def _counts(app: Flask) -> dict[tuple[str, str], int]:
    visitor = Visitor(app)
    return {(email, path): len(visitor.visit(email, path).statements) for email, path in PAGES}


def _rows(app: Flask) -> dict[str, int]:
    """How many rows some lists show (to be sure the second seeding made them longer)."""
    visitor = Visitor(app)
    bank, office = visitor.client("bank@demo.test"), visitor.client("office@demo.test")
    return {
        "prospects": bank.get("/bank/prospects").get_data(as_text=True).count("/bank/enterprises/"),
        "applications": bank.get("/bank/applications")
        .get_data(as_text=True)
        .count("/bank/applications/"),
        "banks": office.get("/office/banks").get_data(as_text=True).count("<tr"),
    }


def test_list_pages_send_as_many_statements_for_many_rows_as_for_few(seeded: Flask) -> None:
    seed(seeded, 6)
    few, few_rows = _counts(seeded), _rows(seeded)
    seed(seeded, 18)
    many, many_rows = _counts(seeded), _rows(seeded)
    assert many_rows["prospects"] > few_rows["prospects"] > 0
    assert many_rows["applications"] > few_rows["applications"] > 0
    grew = {page: (few[page], many[page]) for page in PAGES if many[page] > few[page]}
    assert not grew, f"statements per page grew with the rows: {grew}"
    assert all(n > 0 for n in few.values())
