"""Jinja filters (times in Asia/Shanghai, money with thousands separators) and what every
template sees: the locale, its translations, the unread-notification count."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from flask import Flask
from flask_babel import format_datetime, format_decimal, get_locale, get_translations
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
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
    def _locale() -> dict[str, Any]:
        return {"current_locale": str(get_locale()), **translation_callables()}

    @app.context_processor
    def _globals() -> dict[str, Any]:
        unread = 0
        if current_user.is_authenticated:
            try:
                unread = notifications.unread_count(current_user)
            except SQLAlchemyError:  # an error page while the database is away still renders
                unread = 0
        return {"platform_name": "Xinyidai", "unread_notifications": unread}


def translation_callables() -> dict[str, Any]:
    """``gettext`` and ``ngettext`` (what ``{% trans %}`` calls), and ``_`` (the same
    ``gettext``: Jinja's own ``_`` would look ``gettext`` up again on every call), for one
    render, bound to the translations of the locale in force when it starts.

    Flask-Babel's own, installed as Jinja globals, look the locale and its catalogue up
    again on every string, a few dozen times a page. Resolved here per render instead, they
    still follow ``force_locale`` (a job's e-mail in the recipient's language): a render
    inside it starts inside it. Same semantics as Jinja's "newstyle" gettext: the result is
    escaped-safe when autoescaping and always %-formatted with the keyword arguments
    (``num`` defaulting to ``n`` for ``ngettext``; "%%" is a percent sign even without
    arguments)."""
    translations = get_translations()

    @pass_context
    def gettext(context: Context, string: str, **variables: Any) -> str:
        text = translations.ugettext(string)
        if context.eval_ctx.autoescape:
            # The catalogue is ours (like the template it stands in); arguments are escaped by %.
            text = Markup(text)  # noqa: S704  # nosec B704
        if not variables and "%" not in text:
            return text  # what formatting would return, without its cost (most strings)
        return text % variables

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, n: int, **variables: Any) -> str:
        variables.setdefault("num", n)
        text = translations.ungettext(singular, plural, n)
        if context.eval_ctx.autoescape:
            # The catalogue is ours (like the template it stands in); arguments are escaped by %.
            text = Markup(text)  # noqa: S704  # nosec B704
        return text % variables

    return {"gettext": gettext, "ngettext": ngettext, "_": gettext}
