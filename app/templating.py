"""Jinja filters: times in Asia/Shanghai, money with thousands separators."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from flask import Flask
from flask_babel import format_datetime, format_decimal
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from app.services import notifications

# How each audited action reads in the enterprise's "who used my data" log.
AUDIT_ACTIONS = {
    "authorization.grant": _l("Granted an authorization"),
    "authorization.revoke": _l("Revoked an authorization"),
    "authorization.pause": _l("Paused an authorization"),
    "authorization.resume": _l("Resumed an authorization"),
    "collection.fetch": _l("Collected records from the data providers"),
    "ingestion.batch": _l("A data provider delivered records"),
    "profile.view": _l("Viewed your credit profile"),
    "records.view": _l("Viewed your detail records"),
    "report.export": _l("Exported your data"),
    "need.posted": _l("Posted a financing need"),
    "need.taken": _l("A bank took your financing need"),
    "need.withdrawn": _l("Withdrew a financing need"),
    "policy.applied": _l("Applied under a support policy"),
    "policy.approved": _l("The office approved a support-policy application"),
    "policy.rejected": _l("The office rejected a support-policy application"),
}


def register(app: Flask) -> None:
    @app.template_filter("localtime")
    def localtime(value: dt.datetime | None, fmt: str = "yyyy-MM-dd HH:mm") -> str:
        """Shown in the configured zone (Asia/Shanghai); stored values are UTC."""
        return "" if value is None else format_datetime(value, fmt)

    @app.template_filter("money")
    def money(value: Decimal | None) -> str:
        return "" if value is None else format_decimal(value, format="#,##0.00")

    @app.template_filter("rate")
    def rate(value: Decimal | None) -> str:
        """An annual rate in percent, two decimals (3.450 → 3.45)."""
        return "" if value is None else format_decimal(value, format="0.00")

    @app.template_filter("wan")
    def wan(value: Decimal | None) -> str:
        """CNY shown in 万元 (10,000 CNY)."""
        return "" if value is None else format_decimal(value / Decimal(10_000), format="#,##0.00")

    @app.template_filter("scope_label")
    def scope_label(scope: str) -> str:
        from app.services.authorization import SCOPE_LABELS

        return str(SCOPE_LABELS.get(scope, scope))

    @app.template_filter("audit_action")
    def audit_action(action: str) -> str:
        return str(AUDIT_ACTIONS.get(action, action))

    @app.context_processor
    def _globals() -> dict[str, Any]:
        unread = 0
        if current_user.is_authenticated:
            try:
                unread = notifications.unread_count(current_user)
            except SQLAlchemyError:  # an error page while the database is away still renders
                unread = 0
        return {"platform_name": "Xinyidai", "unread_notifications": unread}
