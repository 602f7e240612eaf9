"""Enterprise size class (大/中/小/微) by the 2011 SME classification, per industry.

The thresholds are data (``models/data/sme_size_2011.csv``), not code. Real-estate
division K70 is classified with the 房地产开发经营 thresholds: GB/T 4754 divisions do not
separate property management (702), which has its own row in the standard.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

from flask_babel import lazy_gettext as _l

from models.codes import CodeError

TEN_THOUSAND = Decimal(10_000)
ORDER = ("large", "medium", "small")


@dataclass(frozen=True, slots=True)
class SizeRule:
    category: str
    size_class: str
    employees: int | None
    revenue_wan: Decimal | None
    total_assets_wan: Decimal | None


@functools.cache
def _rules() -> tuple[dict[str, list[SizeRule]], dict[str, str]]:
    text = resources.files("models.data").joinpath("sme_size_2011.csv").read_text("utf-8")
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    by_category: dict[str, list[SizeRule]] = {}
    category_of_division: dict[str, str] = {}
    for row in csv.DictReader(lines):
        rule = SizeRule(
            row["category"],
            row["size_class"],
            int(row["employees"]) if row["employees"] else None,
            Decimal(row["revenue"]) if row["revenue"] else None,
            Decimal(row["total_assets"]) if row["total_assets"] else None,
        )
        by_category.setdefault(rule.category, []).append(rule)
        for division in row["divisions"].split():
            category_of_division[division] = rule.category
    return by_category, category_of_division


def size_category(industry_code: str) -> str:
    """The 2011 standard's industry category for a canonical GB/T 4754 code ("C13")."""
    _, category_of_division = _rules()
    return category_of_division.get(industry_code[1:3], category_of_division["*"])


def needs_total_assets(industry_code: str) -> bool:
    by_category, _ = _rules()
    return any(r.total_assets_wan is not None for r in by_category[size_category(industry_code)])


def classify_size(
    industry_code: str,
    employees: int,
    annual_revenue: Decimal,
    total_assets: Decimal | None = None,
) -> str:
    """``large``, ``medium``, ``small`` or ``micro``.

    ``annual_revenue`` and ``total_assets`` are in CNY (yuan). Raises :class:`CodeError`
    when the industry's rule needs total assets and none was given, or a figure is negative.
    """
    if employees < 0 or annual_revenue < 0 or (total_assets is not None and total_assets < 0):
        raise CodeError(_l("Employees, revenue and total assets cannot be negative."))
    by_category, _ = _rules()
    rules = by_category[size_category(industry_code)]
    revenue_wan = annual_revenue / TEN_THOUSAND
    assets_wan = None if total_assets is None else total_assets / TEN_THOUSAND
    for size_class in ORDER:
        rule = next(r for r in rules if r.size_class == size_class)
        if rule.total_assets_wan is not None and assets_wan is None:
            raise CodeError(
                _l("Total assets are needed to classify an enterprise in this industry.")
            )
        if (
            (rule.employees is None or employees >= rule.employees)
            and (rule.revenue_wan is None or revenue_wan >= rule.revenue_wan)
            and (
                rule.total_assets_wan is None
                or (assets_wan is not None and assets_wan >= rule.total_assets_wan)
            )
        ):
            return size_class
    return "micro"
