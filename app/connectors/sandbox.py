"""Deterministic synthetic records for any enterprise, from :mod:`ml.synth`'s generator.

The demo has no real provider behind it, so the sandbox plays every provider: for a USCC it
simulates a small population with a seed derived from the USCC, takes the first simulated
firm that has records in every scope, and hands out that firm's records under the asked-for USCC.
The same USCC and months always give the same rows. Like a real provider it delivers the
current version of each record (the latest correction, no resent duplicates), and its
gaps — months a provider has not delivered — are the simulator's own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import lru_cache

import numpy as np
import pandas as pd

from app.connectors.base import Tables, check_request, columns_for
from ml import schema, synth

POPULATION = 12  # firms simulated per USCC; the first delivering every scope is served
PROVIDER_NAMES = {
    "tax": "sandbox-tax",
    "social_insurance": "sandbox-social-insurance",
    "utilities": "sandbox-utilities",
    "provident_fund": "sandbox-provident-fund",
}


def _seed(uscc: str) -> int:
    return int.from_bytes(hashlib.sha256(f"sandbox:{uscc}".encode()).digest()[:8], "big")


def _month_index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def _month_end(index: int) -> dt.date:
    year, month = divmod(index + 1, 12)
    return dt.date(year, month + 1, 1) - dt.timedelta(days=1)


@lru_cache(maxsize=64)
def _firm_tables(uscc: str, last_month: int, window: int) -> dict[str, pd.DataFrame]:
    """The served firm's tables for the ``window`` months up to ``last_month`` (an index)."""
    tables = synth.generate(POPULATION, _seed(uscc), months=window, as_of=_month_end(last_month))
    # The firm delivering the most scopes (the first such one): the demo should show all four.
    firms = tables[schema.ENTERPRISES]["uscc"].astype(str)
    delivered = sum(
        firms.isin(set(tables[tables_of_scope[0]]["uscc"].astype(str))).astype(int)
        for tables_of_scope in schema.SCOPE_TABLES.values()
    )
    chosen = firms.iloc[int(np.argmax(delivered.to_numpy()))]
    out: dict[str, pd.DataFrame] = {}
    for table in schema.SCOPE_TABLES.values():
        for name in table:
            frame = tables[name]
            frame = frame[frame["uscc"].astype(str) == chosen]
            keys = list(schema.KEY_COLUMNS[name])
            frame = frame.sort_values("version", kind="stable").drop_duplicates(keys, keep="last")
            out[name] = frame.reset_index(drop=True)
    return out


def _as_strings(frame: pd.DataFrame, table: str, uscc: str) -> list[dict[str, str]]:
    columns = [c for c in columns_for(table) if c != "uscc"]
    money = set(schema.MONEY_COLUMNS.get(table, ()))
    data: dict[str, list[str]] = {}
    for column in columns:
        values = frame[column]
        if column in money:
            data[column] = [f"{v:.2f}" for v in values.to_numpy(np.float64)]
        elif pd.api.types.is_float_dtype(values):
            data[column] = [f"{v:g}" for v in values.to_numpy(np.float64)]
        else:
            data[column] = values.astype(str).tolist()
    rows = [dict(zip(columns, cells, strict=True)) for cells in zip(*data.values(), strict=True)]
    return [{"uscc": uscc, **row} for row in rows]


class SandboxConnector:
    """Serves every scope for every USCC; never fails."""

    def provider_name(self, scope: str) -> str:
        return PROVIDER_NAMES[scope]

    def fetch(self, uscc: str, scope: str, months: list[str]) -> Tables:
        check_request(uscc, scope, months)
        indices = sorted({_month_index(m) for m in months})
        window = min(max(indices[-1] - indices[0] + 1, 15), 120)
        tables = _firm_tables(uscc, indices[-1], window)
        wanted = set(months)
        years = {m[:4] for m in months}
        out: Tables = {}
        for table in schema.SCOPE_TABLES[scope]:
            frame = tables[table]
            period = schema.PERIOD_COLUMN[table]
            labels = frame[period].astype(str)
            keep = labels.isin(years) if table == schema.TAX_CREDIT_RATING else labels.isin(wanted)
            out[table] = _as_strings(frame[keep.to_numpy()], table, uscc)
        return out
