"""Size classes of the 2011 SME classification, at the boundaries of each criterion."""

from decimal import Decimal

import pytest

from models.codes import CodeError
from models.sme_size import classify_size, needs_total_assets

WAN = Decimal(10_000)


@pytest.mark.parametrize(
    "industry,employees,revenue_wan,assets_wan,expected",
    [
        # industry (C): large needs >=1000 people AND >=40000万; medium 300 & 2000; small 20 & 300
        ("C13", 1000, 40000, None, "large"),
        ("C13", 999, 40000, None, "medium"),
        ("C13", 300, 2000, None, "medium"),
        ("C13", 300, 1999, None, "small"),
        ("C13", 20, 300, None, "small"),
        ("C13", 19, 300, None, "micro"),
        ("C13", 20, 299, None, "micro"),
        # retail: medium 50 & 500; small 10 & 100
        ("F52", 50, 500, None, "medium"),
        ("F52", 10, 100, None, "small"),
        ("F52", 9, 1000, None, "micro"),
        # wholesale: small 5 & 1000
        ("F51", 5, 1000, None, "small"),
        ("F51", 5, 999, None, "micro"),
        # software: small 10 & 50
        ("I65", 10, 50, None, "small"),
        # agriculture: revenue only
        ("A01", 0, 500, None, "medium"),
        ("A01", 1000, 49, None, "micro"),
        # construction: revenue & total assets
        ("E47", 0, 6000, 5000, "medium"),
        ("E47", 0, 6000, 4999, "small"),
        # leasing & business services: employees & total assets
        ("L72", 100, 0, 8000, "medium"),
        # other (e.g. education): employees only
        ("P83", 100, 0, None, "medium"),
        ("P83", 9, 0, None, "micro"),
    ],
)
def test_size_class_boundaries(app_ctx, industry, employees, revenue_wan, assets_wan, expected):
    assets = None if assets_wan is None else Decimal(assets_wan) * WAN
    assert classify_size(industry, employees, Decimal(revenue_wan) * WAN, assets) == expected


def test_construction_without_total_assets_is_refused(app_ctx):
    assert needs_total_assets("E47")
    assert not needs_total_assets("C13")
    with pytest.raises(CodeError, match="Total assets are needed"):
        classify_size("E47", 10, Decimal(1_000_000))


def test_negative_figures_refused(app_ctx):
    with pytest.raises(CodeError, match="negative"):
        classify_size("C13", -1, Decimal(0))
