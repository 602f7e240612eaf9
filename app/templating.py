"""Jinja filters: times in Asia/Shanghai, money with thousands separators."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from flask import Flask
from flask_babel import format_datetime, format_decimal


def register(app: Flask) -> None:
    @app.template_filter("localtime")
    def localtime(value: dt.datetime | None, fmt: str = "yyyy-MM-dd HH:mm") -> str:
        """Shown in the configured zone (Asia/Shanghai); stored values are UTC."""
        return "" if value is None else format_datetime(value, fmt)

    @app.template_filter("money")
    def money(value: Decimal | None) -> str:
        return "" if value is None else format_decimal(value, format="#,##0.00")

    @app.template_filter("wan")
    def wan(value: Decimal | None) -> str:
        """CNY shown in 万元 (10,000 CNY)."""
        return "" if value is None else format_decimal(value / Decimal(10_000), format="#,##0.00")

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"platform_name": "Xinyidai"}
