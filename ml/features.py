"""Raw source records → one feature row per enterprise.

:func:`build_features` takes the tables of :mod:`ml.schema` (pandas DataFrames keyed by table
name) and an observation date and returns a float frame indexed by ``uscc`` with one column per
entry of :data:`FEATURE_SPECS`, in that order.

Rules applied to every source:

* Only records whose month is at or before the month of ``as_of`` are used (a ``"YYYY-MM"``
  record counts as of its month), within a look-back of :data:`LOOKBACK_MONTHS` months.
  Public-credit records count from ``decided_on <= as_of``; a tax credit rating for year ``Y``
  becomes known in April of ``Y + 1``.
* Corrections: of the rows sharing a record key (:data:`ml.schema.KEY_COLUMNS`) only the highest
  ``version`` is kept.
* Missing is missing: an enterprise that did not authorize a scope, or has no records of a
  source, gets NaN (never 0) for that source's features. Public credit is public data, so an
  enterprise without public-credit records has zero counts. Enterprise-table features (age,
  employees, authorized scopes) are always present.
* Offsets: offset 0 is the month of ``as_of``, offset 1 the month before, and so on. Windows
  such as "last 12 months" are offsets 0–11 and use only the months that have records.

Everything is vectorized: records are scattered into dense (enterprise × month) numpy
matrices and reduced along the month axis.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from ml import schema

LOOKBACK_MONTHS = 36
"""Records older than this many months before the ``as_of`` month are ignored."""

RATING_ORDINAL: dict[str, float] = {"A": 4.0, "B": 3.0, "M": 2.0, "C": 1.0, "D": 0.0}
"""Tax credit rating → ordinal (higher is better)."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class FeatureSpec:
    """Metadata of one feature.

    ``source`` is a scope of :data:`ml.schema.SCOPES`, ``"public_credit"`` or ``"enterprise"``.
    ``risk_direction`` is +1 when a higher value raises default risk, -1 when it lowers it and 0
    when there is no monotone business expectation. ``actionable`` features can be changed by
    the enterprise's own conduct; ``target_value`` is the value after the action
    (``action_zh``/``action_en``). An action only ever improves a feature: apply it as
    ``min(value, target)`` for ``risk_direction == +1`` and ``max(value, target)`` for -1.
    Several features may share one action (e.g. clearing tax arrears); apply them together.
    """

    name: str
    source: str
    label_zh: str
    label_en: str
    risk_direction: int
    actionable: bool = False
    target_value: float | None = None
    action_zh: str = ""
    action_en: str = ""


_PAY_TAX = ("结清欠缴税款", "Pay off outstanding tax arrears")
_FILE_ON_TIME = ("按期申报纳税", "File tax returns on time")
_PAY_SI = ("结清社保欠费", "Clear social-insurance arrears")
_FULL_SI = ("按时足额缴纳社保费", "Pay social-insurance contributions in full and on time")
_CONT_SI = ("连续缴纳社保满12个月", "Keep social-insurance contributions continuous for 12 months")
_PAY_PF = ("补缴住房公积金欠款", "Pay housing-provident-fund arrears")
_CONT_PF = (
    "连续缴存住房公积金满12个月",
    "Keep provident-fund contributions continuous for 12 months",
)
_UTIL_ON_TIME = ("按时缴纳水电气费", "Pay water, power and gas bills on time")
_UTIL_SETTLE = ("结清拖欠的水电气费", "Settle unpaid utility bills")


def _act(name: str, source: str, zh: str, en: str, direction: int, target: float,
         action: tuple[str, str]) -> FeatureSpec:  # fmt: skip
    return FeatureSpec(name, source, zh, en, direction, True, target, action[0], action[1])


FEATURE_SPECS: list[FeatureSpec] = [
    # --- tax (scope "tax": tables tax and tax_credit_rating) ---
    FeatureSpec("tax_filing_regularity_12m", "tax", "近12个月增值税申报规律性",
                "VAT filing regularity, last 12 months (share of months filed)", -1),
    FeatureSpec("tax_months_since_last_payment", "tax", "距最近一次缴税月数",
                "Months since the last tax payment", +1),
    _act("tax_late_filings_12m", "tax", "近12个月逾期申报次数",
         "Late tax filings, last 12 months", +1, 0.0, _FILE_ON_TIME),
    _act("tax_arrears_months_12m", "tax", "近12个月欠税月数",
         "Months with tax arrears, last 12 months", +1, 0.0, _PAY_TAX),
    FeatureSpec("tax_months_since_arrears", "tax", "距最近一次欠税月数",
                "Months since tax arrears were last recorded (history length if never)", -1),
    _act("tax_arrears_to_monthly_sales", "tax", "当前欠税额/月均销售额",
         "Outstanding tax arrears relative to average monthly sales", +1, 0.0, _PAY_TAX),
    FeatureSpec("sales_log_12m", "tax", "近12个月申报销售额(对数)",
                "Declared sales over the last 12 months (log CNY, annualized)", -1),
    FeatureSpec("sales_trend_6m", "tax", "销售额趋势(近6个月/前6个月)",
                "Sales trend: last 6 months vs the 6 before (log ratio)", -1),
    FeatureSpec("sales_yoy_change_6m", "tax", "近6个月销售额同比变化",
                "Sales, last 6 months vs the same months a year earlier (log ratio)", -1),
    FeatureSpec("sales_slope_12m", "tax", "近12个月销售额斜率",
                "Sales slope over 12 months (share of mean per month)", -1),
    FeatureSpec("sales_cv_12m", "tax", "近12个月销售额波动率",
                "Sales volatility over 12 months (coefficient of variation)", +1),
    FeatureSpec("tax_credit_rating", "tax", "纳税信用等级", "Tax credit rating (A=4 … D=0)", -1),
    # --- social insurance ---
    FeatureSpec("si_headcount_log", "social_insurance", "社保参保人数(对数)",
                "Social-insurance headcount (log)", -1),
    FeatureSpec("si_headcount_trend_12m", "social_insurance", "社保参保人数同比变化",
                "Social-insurance headcount change vs a year earlier (log ratio)", -1),
    _act("si_arrears_months_12m", "social_insurance", "近12个月社保欠费月数",
         "Months with social-insurance arrears, last 12 months", +1, 0.0, _PAY_SI),
    FeatureSpec("si_months_since_arrears", "social_insurance", "距最近一次社保欠费月数",
                "Months since social-insurance arrears (history length if never)", -1),
    _act("si_payment_ratio_12m", "social_insurance", "近12个月社保实缴/应缴",
         "Social insurance paid / due, last 12 months", -1, 1.0, _FULL_SI),
    FeatureSpec("si_months_since_last_payment", "social_insurance", "距最近一次社保缴费月数",
                "Months since the last social-insurance payment", +1),
    _act("si_continuity_months", "social_insurance", "社保连续缴费月数",
         "Months of continuous social-insurance contributions", -1, 12.0, _CONT_SI),
    # --- provident fund ---
    FeatureSpec("pf_contributors_log", "provident_fund", "公积金缴存人数(对数)",
                "Provident-fund contributing employees (log)", -1),
    FeatureSpec("pf_contributor_trend_12m", "provident_fund", "公积金缴存人数同比变化",
                "Provident-fund contributors vs a year earlier (log ratio)", -1),
    _act("pf_arrears_months_12m", "provident_fund", "近12个月公积金欠缴月数",
         "Months with provident-fund arrears, last 12 months", +1, 0.0, _PAY_PF),
    _act("pf_continuity_months", "provident_fund", "公积金连续缴存月数",
         "Months of continuous provident-fund contributions", -1, 12.0, _CONT_PF),
    FeatureSpec("pf_months_since_last_payment", "provident_fund", "距最近一次公积金缴存月数",
                "Months since the last provident-fund contribution", +1),
    # --- utilities ---
    FeatureSpec("elec_yoy_change_3m", "utilities", "近3个月用电量同比变化",
                "Electricity use, last 3 months vs same months a year earlier (log ratio)", -1),
    _act("util_days_overdue_mean_12m", "utilities", "近12个月水电气平均逾期天数",
         "Average days utility bills were overdue, last 12 months", +1, 0.0, _UTIL_ON_TIME),
    _act("util_days_overdue_max_12m", "utilities", "近12个月水电气最长逾期天数",
         "Longest utility-bill delay in days, last 12 months", +1, 0.0, _UTIL_ON_TIME),
    _act("util_unpaid_ratio_12m", "utilities", "近12个月水电气欠费比例",
         "Share of utility bills unpaid, last 12 months", +1, 0.0, _UTIL_SETTLE),
    # --- enterprise register (always present) ---
    FeatureSpec("age_years", "enterprise", "成立年限", "Years since founding", -1),
    FeatureSpec("employees_log", "enterprise", "从业人数(对数)", "Employees (log)", -1),
    FeatureSpec("authorized_scope_count", "enterprise", "授权数据类别数",
                "Number of data scopes authorized", 0),
    # --- public credit (public data: zero when no records) ---
    FeatureSpec("pc_minor_active", "public_credit", "公示期内未修复轻微失信记录数",
                "Minor negative public-credit records in publication, not repaired", +1),
    FeatureSpec("pc_general_active", "public_credit", "公示期内未修复一般失信记录数",
                "General negative public-credit records in publication, not repaired", +1),
    FeatureSpec("pc_serious_active", "public_credit", "公示期内未修复严重失信记录数",
                "Serious negative public-credit records in publication, not repaired", +1),
    FeatureSpec("pc_dishonest_debtor_flag", "public_credit", "失信被执行人",
                "Listed as a dishonest judgment debtor", +1),
    FeatureSpec("pc_serious_list_flag", "public_credit", "列入严重失信主体名单",
                "On the serious-dishonesty list", +1),
    FeatureSpec("pc_abnormal_operation_flag", "public_credit", "列入经营异常名录",
                "On the abnormal-operation list", +1),
    FeatureSpec("pc_licence_revoked_flag", "public_credit", "营业执照被吊销",
                "Business licence revoked", +1),
    FeatureSpec("pc_commendations_active", "public_credit", "公示期内表彰记录数",
                "Commendations in publication", -1),
]  # fmt: skip

FEATURE_NAMES: list[str] = [f.name for f in FEATURE_SPECS]
FEATURES_BY_NAME: dict[str, FeatureSpec] = {f.name: f for f in FEATURE_SPECS}


# ----------------------------------------------------------------------------- helpers


def month_index(values: pd.Series, column: str = "month") -> IntArray:
    """``"YYYY-MM"`` (or ``"YYYY-MM-DD"``) strings → ``year * 12 + month - 1``.

    Parses each distinct value once, so it is fast on millions of rows. Raises
    :class:`ml.schema.SchemaError` naming the column and a bad value.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    parsed = np.empty(len(uniques), dtype=np.int64)
    for i, raw in enumerate(uniques):
        text = str(raw)
        try:
            year, month = int(text[0:4]), int(text[5:7])
            if text[4] != "-" or not 1 <= month <= 12:
                raise ValueError
        except (ValueError, IndexError):
            raise schema.SchemaError(
                f"column {column!r}: {text!r} is not a YYYY-MM month"
            ) from None
        parsed[i] = year * 12 + month - 1
    if (codes < 0).any():
        raise schema.SchemaError(f"column {column!r}: empty month")
    return parsed[codes]


def _date_days(values: pd.Series) -> FloatArray:
    """ISO date strings → days since 1970-01-01 as float; empty/NaN → NaN."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    parsed = np.full(len(uniques) + 1, np.nan)
    for i, raw in enumerate(uniques):
        text = str(raw).strip()
        if text and text.lower() not in {"nan", "none", "nat"}:
            parsed[i] = (dt.date.fromisoformat(text[:10]) - dt.date(1970, 1, 1)).days
    return parsed[codes]  # code -1 picks the trailing NaN


def _numeric(frame: pd.DataFrame, column: str) -> FloatArray:
    """Column as float64; unparsable values become NaN."""
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _latest_version(key: IntArray, version: FloatArray) -> IntArray:
    """Row positions keeping, for each key, the row with the highest version (last on ties)."""
    order = np.lexsort((version, key))
    sorted_key = key[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sorted_key[1:] != sorted_key[:-1]
    return order[last]


def _safe_div(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den) & ~np.isnan(num))
    return out


def _window(m: FloatArray, lo: int, hi: int) -> FloatArray:
    return m[:, lo : hi + 1]


def _count_obs(m: FloatArray) -> FloatArray:
    return (~np.isnan(m)).sum(axis=1).astype(np.float64)


def _nanmean(m: FloatArray) -> FloatArray:
    """Row means over observed cells; NaN (no warning) where a row has none."""
    return _safe_div(np.nansum(m, axis=1), _count_obs(m))


def _nansum_or_nan(m: FloatArray) -> FloatArray:
    return np.where(_count_obs(m) > 0, np.nansum(m, axis=1), np.nan)


def _first_offset(b: BoolArray, default: FloatArray) -> FloatArray:
    """Smallest offset where ``b`` is true per row, else ``default``."""
    return np.where(b.any(axis=1), b.argmax(axis=1).astype(np.float64), default)


def _history_len(present: BoolArray) -> FloatArray:
    """Months from the oldest record to the ``as_of`` month, inclusive (0 when none)."""
    h = present.shape[1]
    oldest = h - 1 - present[:, ::-1].argmax(axis=1)
    return np.where(present.any(axis=1), oldest + 1, 0).astype(np.float64)


def _continuity(good: BoolArray, present: BoolArray) -> FloatArray:
    """Consecutive months with ``good`` counted back from the latest record (offset-ascending)."""
    h = good.shape[1]
    start = present.argmax(axis=1)
    cols = np.arange(h)
    breaks = ~good & (cols[None, :] >= start[:, None])
    stop = np.where(breaks.any(axis=1), breaks.argmax(axis=1), h)
    return np.where(present.any(axis=1), stop - start, 0).astype(np.float64)


def _year_on_year(m: FloatArray, months: int) -> FloatArray:
    """log1p(mean of offsets 0…months−1) − log1p(mean of the same calendar months a year
    earlier), over the months observed in both years (so a missing recent month does not mix
    seasons); NaN when no month pairs up."""
    recent = _window(m, 0, months - 1)
    year_ago = _window(m, 12, 12 + months - 1)
    pair = ~np.isnan(recent) & ~np.isnan(year_ago)
    a = _nanmean(np.where(pair, recent, np.nan))
    b = _nanmean(np.where(pair, year_ago, np.nan))
    return np.log1p(np.clip(a, 0, None)) - np.log1p(np.clip(b, 0, None))


def _level_change(m: FloatArray) -> FloatArray:
    """Year-on-year change of the last three months (see :func:`_year_on_year`)."""
    return _year_on_year(m, 3)


def _latest_value(m: FloatArray) -> FloatArray:
    present = ~np.isnan(m)
    idx = present.argmax(axis=1)
    return np.where(present.any(axis=1), m[np.arange(m.shape[0]), idx], np.nan)


class _Panel:
    """Deduplicated monthly records of one table scattered into (enterprise × offset) form."""

    def __init__(
        self,
        frame: pd.DataFrame | None,
        table: str,
        ent_index: pd.Index,
        ref_month: int,
        kind_column: str | None = None,
        kinds: tuple[str, ...] = (),
    ) -> None:
        self.n = len(ent_index)
        self.h = LOOKBACK_MONTHS
        self.frame = schema.empty_table(table) if frame is None else frame
        if frame is None or len(frame) == 0:
            self.rows = np.empty(0, dtype=np.int64)
            self.off = np.empty(0, dtype=np.int64)
            self.kind = np.empty(0, dtype=np.int64)
            self.positions = np.empty(0, dtype=np.int64)
            return
        schema.check_columns(table, frame)
        ent = _lookup(ent_index, frame["uscc"])
        off = ref_month - month_index(
            frame[schema.PERIOD_COLUMN[table]], schema.PERIOD_COLUMN[table]
        )
        if kind_column is not None:
            kind = _lookup(pd.Index(kinds), frame[kind_column])
        else:
            kind = np.zeros(len(frame), dtype=np.int64)
        keep = np.flatnonzero((ent >= 0) & (off >= 0) & (off < self.h) & (kind >= 0))
        ent, off, kind = ent[keep], off[keep], kind[keep]
        version = _numeric(frame, "version")[keep]
        version = np.where(np.isnan(version), 1.0, version)
        key = (ent * self.h + off) * max(len(kinds), 1) + kind
        pick = _latest_version(key, version)
        self.rows, self.off, self.kind = ent[pick], off[pick], kind[pick]
        self.positions = keep[pick]  # rows of ``frame`` kept (latest versions in the window)

    def values(self, column: str) -> FloatArray:
        """``column`` of the kept rows as float (unparsable → NaN)."""
        if self.positions.size == 0:
            return np.empty(0)
        return _numeric(self.frame, column)[self.positions]

    def has(self) -> BoolArray:
        out = np.zeros(self.n, dtype=bool)
        out[self.rows] = True
        return out

    def matrix(self, column: str, kind: int | None = None, *, agg_sum: bool = False) -> FloatArray:
        """Dense matrix of ``column``; NaN where no record. With ``kind=None`` and several kinds,
        cells combine kinds by sum (``agg_sum``) or max."""
        values = self.values(column)
        rows, off = self.rows, self.off
        if kind is not None:
            sel = self.kind == kind
            rows, off, values = rows[sel], off[sel], values[sel]
        out = np.full((self.n, self.h), np.nan)
        flat = rows * self.h + off
        if kind is None and self.kind.size and self.kind.max() > 0:
            # several rows per cell: combine
            ok = ~np.isnan(values)
            present = np.zeros(self.n * self.h, dtype=bool)
            present[flat] = True
            if agg_sum:
                acc = np.bincount(flat[ok], weights=values[ok], minlength=self.n * self.h).astype(
                    np.float64
                )
            else:
                acc = np.full(self.n * self.h, -np.inf)
                np.maximum.at(acc, flat[ok], values[ok])
                acc[np.isneginf(acc)] = np.nan
            acc[~present] = np.nan
            return acc.reshape(self.n, self.h)
        out.reshape(-1)[flat] = values
        return out

    def present(self, kind: int | None = None) -> BoolArray:
        out = np.zeros((self.n, self.h), dtype=bool)
        sel = slice(None) if kind is None else self.kind == kind
        out[self.rows[sel], self.off[sel]] = True
        return out


def _authorized(enterprises: pd.DataFrame) -> dict[str, BoolArray]:
    scopes = enterprises["authorized_scopes"].fillna("").astype(str)
    return {
        scope: scopes.str.contains(rf"(?:^|;)\s*{scope}\s*(?:;|$)", regex=True).to_numpy(bool)
        for scope in schema.SCOPES
    }


def _lookup(index: pd.Index, values: pd.Series) -> IntArray:
    """Position of each value in ``index`` (-1 when absent or missing).

    Hashes the distinct values once (``pd.factorize``), which is much faster than
    ``index.get_indexer`` on millions of Arrow-backed strings or categoricals.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    where = index.get_indexer(pd.Index(np.asarray(uniques, dtype=object)))
    return np.append(where, -1).astype(np.int64)[codes]


def _as_date(as_of: dt.date) -> dt.date:
    """Accept a ``datetime``/``pd.Timestamp`` as well as a ``date``."""
    return as_of.date() if isinstance(as_of, dt.datetime) else as_of


def _enterprise_index(enterprises: pd.DataFrame) -> pd.Index:
    index = pd.Index(enterprises["uscc"].astype(str), name="uscc")
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise schema.SchemaError(f"table 'enterprises': uscc {dup} appears more than once")
    return index


# ----------------------------------------------------------------------------- sources


def _tax_features(tables: Mapping[str, pd.DataFrame], idx: pd.Index, ref: int,
                  as_of: dt.date) -> dict[str, FloatArray]:  # fmt: skip
    p = _Panel(tables.get(schema.TAX), schema.TAX, idx, ref, "tax_type", schema.TAX_TYPES)
    vat = schema.TAX_TYPES.index("VAT")
    present_any = p.present()
    vat_present = p.present(vat)
    sales = p.matrix("declared_sales", vat)
    paid = p.matrix("amount_paid", agg_sum=True)
    arrears = p.matrix("arrears", agg_sum=True)
    late = p.matrix("late_filing", agg_sum=True)
    hist = _history_len(present_any)

    recent12 = _window(sales, 0, 11)
    mean12 = _nanmean(recent12)
    first_vat = _history_len(vat_present)
    out: dict[str, FloatArray] = {}
    out["tax_filing_regularity_12m"] = _safe_div(
        vat_present[:, :12].sum(axis=1).astype(np.float64), np.minimum(first_vat, 12.0)
    )
    out["tax_months_since_last_payment"] = _first_offset(np.nan_to_num(paid) > 0, hist)
    out["tax_late_filings_12m"] = np.nansum(_window(late, 0, 11), axis=1)
    arrears_pos = np.nan_to_num(arrears) > 0
    out["tax_arrears_months_12m"] = arrears_pos[:, :12].sum(axis=1).astype(np.float64)
    out["tax_months_since_arrears"] = _first_offset(arrears_pos, hist)
    latest_arrears = _latest_value(arrears)
    out["tax_arrears_to_monthly_sales"] = np.where(
        latest_arrears > 0, latest_arrears / np.maximum(np.nan_to_num(mean12), 1000.0), 0.0
    )
    out["sales_log_12m"] = np.log1p(12.0 * np.clip(mean12, 0, None))
    out["sales_trend_6m"] = np.log1p(np.clip(_nanmean(_window(sales, 0, 5)), 0, None)) - np.log1p(
        np.clip(_nanmean(_window(sales, 6, 11)), 0, None)
    )
    out["sales_yoy_change_6m"] = _year_on_year(sales, 6)
    # OLS slope of sales on time (time runs forward: t = -offset), relative to the mean
    obs = ~np.isnan(recent12)
    n_obs = obs.sum(axis=1).astype(np.float64)
    t = -np.arange(12, dtype=np.float64)[None, :] * obs
    y = np.nan_to_num(recent12)
    st, sy = t.sum(axis=1), y.sum(axis=1)
    stt, sty = (t * t).sum(axis=1), (t * y).sum(axis=1)
    den = n_obs * stt - st * st
    slope = _safe_div(n_obs * sty - st * sy, den)
    enough = n_obs >= 3
    out["sales_slope_12m"] = np.where(enough, _safe_div(slope, mean12), np.nan)
    var = _safe_div(np.nansum((recent12 - mean12[:, None]) ** 2, axis=1), n_obs)
    out["sales_cv_12m"] = np.where(enough, _safe_div(np.sqrt(var), mean12), np.nan)

    has_tax = p.has()
    for name in list(out):
        out[name] = np.where(has_tax, out[name], np.nan)
    out["tax_credit_rating"] = _rating(tables.get(schema.TAX_CREDIT_RATING), idx, as_of)
    return out


def _rating(frame: pd.DataFrame | None, idx: pd.Index, as_of: dt.date) -> FloatArray:
    out = np.full(len(idx), np.nan)
    if frame is None or len(frame) == 0:
        return out
    schema.check_columns(schema.TAX_CREDIT_RATING, frame)
    ent = _lookup(idx, frame["uscc"])
    year = pd.to_numeric(frame["year"], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    latest_known = (
        as_of.year - 1 if as_of.month >= schema.RATING_PUBLISHED_MONTH else as_of.year - 2
    )
    value = frame["rating"].astype(str).str.strip().str.upper().map(RATING_ORDINAL)
    value_arr = value.to_numpy(np.float64, na_value=np.nan)
    keep = np.flatnonzero((ent >= 0) & (year <= latest_known) & ~np.isnan(value_arr))
    if keep.size == 0:
        return out
    version = _numeric(frame, "version")[keep]
    version = np.where(np.isnan(version), 1.0, version)
    key = ent[keep] * 10_000 + year[keep].astype(np.int64)
    pick = keep[_latest_version(key, version)]
    # latest year per enterprise: sort by (ent, year) and take the last
    order = pick[np.lexsort((year[pick], ent[pick]))]
    last = np.ones(order.size, dtype=bool)
    last[:-1] = ent[order][1:] != ent[order][:-1]
    out[ent[order[last]]] = value_arr[order[last]]
    return out


def _headcount_features(p: _Panel, column: str, prefix: str, noun: str,
                        paid_column: str) -> dict[str, FloatArray]:  # fmt: skip
    head = p.matrix(column)
    present = p.present()
    paid = p.matrix(paid_column)
    arrears = p.matrix("arrears")
    hist = _history_len(present)
    out: dict[str, FloatArray] = {}
    level = _nanmean(_window(head, 0, 2))
    level = np.where(np.isnan(level), _latest_value(head), level)
    out[f"{prefix}_{noun}_log"] = np.log1p(np.clip(level, 0, None))
    out[f"{prefix}_{noun}_trend_12m"] = _level_change(head)
    arrears_pos = np.nan_to_num(arrears) > 0
    out[f"{prefix}_arrears_months_12m"] = arrears_pos[:, :12].sum(axis=1).astype(np.float64)
    out[f"{prefix}_months_since_arrears"] = _first_offset(arrears_pos, hist)
    contributing = (np.nan_to_num(paid) > 0) & ~arrears_pos
    out[f"{prefix}_continuity_months"] = _continuity(contributing, present)
    out[f"{prefix}_months_since_last_payment"] = _first_offset(np.nan_to_num(paid) > 0, hist)
    return out


def _si_features(tables: Mapping[str, pd.DataFrame], idx: pd.Index,
                 ref: int) -> dict[str, FloatArray]:  # fmt: skip
    p = _Panel(tables.get(schema.SOCIAL_INSURANCE), schema.SOCIAL_INSURANCE, idx, ref)
    out = _headcount_features(p, "insured_headcount", "si", "headcount", "amount_paid")
    due = _nansum_or_nan(_window(p.matrix("amount_due"), 0, 11))
    paid = _nansum_or_nan(_window(p.matrix("amount_paid"), 0, 11))
    out["si_payment_ratio_12m"] = np.clip(_safe_div(paid, due), 0.0, 1.5)
    has = p.has()
    return {k: np.where(has, v, np.nan) for k, v in out.items()}


def _pf_features(tables: Mapping[str, pd.DataFrame], idx: pd.Index,
                 ref: int) -> dict[str, FloatArray]:  # fmt: skip
    p = _Panel(tables.get(schema.PROVIDENT_FUND), schema.PROVIDENT_FUND, idx, ref)
    out = _headcount_features(p, "contributing_employees", "pf", "contributors", "amount")
    out["pf_contributor_trend_12m"] = out.pop("pf_contributors_trend_12m")
    del out["pf_months_since_arrears"]
    has = p.has()
    return {k: np.where(has, v, np.nan) for k, v in out.items()}


def _utility_features(tables: Mapping[str, pd.DataFrame], idx: pd.Index,
                      ref: int) -> dict[str, FloatArray]:  # fmt: skip
    p = _Panel(tables.get(schema.UTILITIES), schema.UTILITIES, idx, ref, "utility",
               schema.UTILITY_KINDS)  # fmt: skip
    elec = p.matrix("consumption", schema.UTILITY_KINDS.index("electricity"))
    overdue_max = p.matrix("days_overdue")  # max over kinds in a month
    overdue_sum = p.matrix("days_overdue", agg_sum=True)
    sel = ~np.isnan(p.values("days_overdue"))
    bills = np.bincount((p.rows * p.h + p.off)[sel], minlength=p.n * p.h).reshape(p.n, p.h)
    out: dict[str, FloatArray] = {}
    out["elec_yoy_change_3m"] = _level_change(elec)
    out["util_days_overdue_mean_12m"] = _safe_div(
        np.nansum(_window(overdue_sum, 0, 11), axis=1), bills[:, :12].sum(axis=1)
    )
    out["util_days_overdue_max_12m"] = np.where(
        _count_obs(_window(overdue_max, 0, 11)) > 0,
        np.nanmax(np.where(np.isnan(overdue_max[:, :12]), -np.inf, overdue_max[:, :12]), axis=1),
        np.nan,
    )
    billed = _nansum_or_nan(_window(p.matrix("amount_billed", agg_sum=True), 0, 11))
    paid = _nansum_or_nan(_window(p.matrix("amount_paid", agg_sum=True), 0, 11))
    out["util_unpaid_ratio_12m"] = np.clip(1.0 - _safe_div(paid, billed), 0.0, 1.0)
    has = p.has()
    return {k: np.where(has, v, np.nan) for k, v in out.items()}


_NEGATIVE_FLAGS = {
    "pc_dishonest_debtor_flag": "dishonest_judgment_debtor",
    "pc_serious_list_flag": "serious_dishonesty_list",
    "pc_abnormal_operation_flag": "abnormal_operation",
    "pc_licence_revoked_flag": "licence_revoked",
}


def _public_credit_features(tables: Mapping[str, pd.DataFrame], idx: pd.Index,
                            as_of: dt.date) -> dict[str, FloatArray]:  # fmt: skip
    n = len(idx)
    names = ["pc_minor_active", "pc_general_active", "pc_serious_active", *_NEGATIVE_FLAGS,
             "pc_commendations_active"]  # fmt: skip
    out = {name: np.zeros(n) for name in names}
    frame = tables.get(schema.PUBLIC_CREDIT)
    if frame is None or len(frame) == 0:
        return out
    schema.check_columns(schema.PUBLIC_CREDIT, frame)
    ent = _lookup(idx, frame["uscc"])
    codes, uniques = pd.factorize(frame["record_id"].astype(str))
    version = _numeric(frame, "version")
    version = np.where(np.isnan(version), 1.0, version)
    keep = np.flatnonzero(ent >= 0)
    key = ent[keep] * max(len(uniques), 1) + codes[keep]
    pick = keep[_latest_version(key, version[keep])]
    sub = frame.iloc[pick]
    ent = ent[pick]
    today = float((as_of - dt.date(1970, 1, 1)).days)
    decided = _date_days(sub["decided_on"])
    ends = _date_days(sub["publication_ends_on"])
    repaired = _date_days(sub["repaired_on"])
    active = (
        (decided <= today)
        & (np.isnan(ends) | (ends > today))
        & (np.isnan(repaired) | (repaired > today))
    )
    rtype = sub["record_type"].astype(str).to_numpy()
    severity = sub["severity"].astype(str).to_numpy()
    negative = active & (rtype != "commendation")
    for sev in schema.SEVERITIES:
        np.add.at(out[f"pc_{sev}_active"], ent[negative & (severity == sev)], 1.0)
    for name, record_type in _NEGATIVE_FLAGS.items():
        out[name][ent[active & (rtype == record_type)]] = 1.0
    np.add.at(out["pc_commendations_active"], ent[active & (rtype == "commendation")], 1.0)
    return out


def _enterprise_features(enterprises: pd.DataFrame, as_of: dt.date,
                         authorized: dict[str, BoolArray]) -> dict[str, FloatArray]:  # fmt: skip
    founded = _date_days(enterprises["founded_on"])
    today = float((as_of - dt.date(1970, 1, 1)).days)
    employees = pd.to_numeric(enterprises["employees"], errors="coerce").to_numpy(
        np.float64, na_value=np.nan
    )
    return {
        "age_years": np.clip((today - founded) / 365.25, 0.0, None),
        "employees_log": np.log1p(np.clip(employees, 0, None)),
        "authorized_scope_count": np.sum(list(authorized.values()), axis=0).astype(float),
    }


# ----------------------------------------------------------------------------- public API


def build_features(tables: Mapping[str, pd.DataFrame], as_of: dt.date) -> pd.DataFrame:
    """One float row per enterprise of ``tables["enterprises"]``, columns :data:`FEATURE_NAMES`.

    ``tables`` maps table names of :mod:`ml.schema` to frames; any source table may be absent
    (its features are then NaN). Records of enterprises not in the enterprises table are
    ignored. Raises :class:`ml.schema.SchemaError` for missing columns, duplicate enterprises
    or malformed months.
    """
    schema.check_tables(tables)
    as_of = _as_date(as_of)
    enterprises = tables[schema.ENTERPRISES]
    idx = _enterprise_index(enterprises)
    ref = as_of.year * 12 + as_of.month - 1
    authorized = _authorized(enterprises)

    values: dict[str, FloatArray] = {}
    values.update(_tax_features(tables, idx, ref, as_of))
    values.update(_si_features(tables, idx, ref))
    values.update(_pf_features(tables, idx, ref))
    values.update(_utility_features(tables, idx, ref))
    values.update(_enterprise_features(enterprises, as_of, authorized))
    values.update(_public_credit_features(tables, idx, as_of))

    for spec in FEATURE_SPECS:
        if spec.source in authorized:  # a scope: unauthorized → missing, whatever was sent
            values[spec.name] = np.where(authorized[spec.source], values[spec.name], np.nan)
    missing = [name for name in FEATURE_NAMES if name not in values]
    if missing:  # pragma: no cover - guards FEATURE_SPECS against the builders
        raise RuntimeError(f"features without a builder: {missing}")
    return pd.DataFrame(
        {name: values[name].astype(np.float64) for name in FEATURE_NAMES}, index=idx
    )


def coverage(tables: Mapping[str, pd.DataFrame], as_of: dt.date) -> pd.DataFrame:
    """Data coverage per enterprise and scope, from all records up to the ``as_of`` month.

    Columns: ``uscc``, ``scope``, ``authorized`` (bool), ``first_month``/``last_month``
    (``"YYYY-MM"`` or empty), ``months_covered`` (distinct months with records), ``gap_months``
    (months missing between the first and last), ``lag_months`` (months from the last record to
    the ``as_of`` month; NaN when none). One row per enterprise × scope, enterprises in table
    order, scopes in :data:`ml.schema.SCOPES` order.
    """
    schema.check_tables(tables)
    as_of = _as_date(as_of)
    enterprises = tables[schema.ENTERPRISES]
    idx = _enterprise_index(enterprises)
    n = len(idx)
    ref = as_of.year * 12 + as_of.month - 1
    authorized = _authorized(enterprises)
    main_table = {scope: tables_[0] for scope, tables_ in schema.SCOPE_TABLES.items()}
    parts = []
    for scope in schema.SCOPES:
        table = main_table[scope]
        frame = tables.get(table)
        first = np.full(n, np.nan)
        last = np.full(n, np.nan)
        covered = np.zeros(n)
        if frame is not None and len(frame):
            schema.check_columns(table, frame)
            ent = _lookup(idx, frame["uscc"])
            month = month_index(frame[schema.PERIOD_COLUMN[table]], schema.PERIOD_COLUMN[table])
            ok = (ent >= 0) & (month <= ref)
            span_all = int(month[ok].max(initial=0) - month[ok].min(initial=0)) + 1
            base = int(month[ok].min(initial=0))
            pairs = np.sort(ent[ok] * span_all + (month[ok] - base))
            pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]  # distinct (enterprise, month)
            e, m = pairs // span_all, pairs % span_all + base
            covered = np.bincount(e, minlength=n).astype(np.float64)
            first_v = np.full(n, np.inf)
            last_v = np.full(n, -np.inf)
            np.minimum.at(first_v, e, m.astype(np.float64))
            np.maximum.at(last_v, e, m.astype(np.float64))
            first = np.where(np.isinf(first_v), np.nan, first_v)
            last = np.where(np.isinf(last_v), np.nan, last_v)
        span = last - first + 1
        parts.append(
            pd.DataFrame(
                {
                    "uscc": idx.to_numpy(),
                    "scope": scope,
                    "authorized": authorized[scope],
                    "first_month": _format_months(first),
                    "last_month": _format_months(last),
                    "months_covered": covered.astype(np.int64),
                    "gap_months": np.nan_to_num(span - covered).astype(np.int64),
                    "lag_months": ref - last,
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    order = np.lexsort((np.repeat(np.arange(len(schema.SCOPES)), n), np.tile(np.arange(n), 4)))
    return out.iloc[order].reset_index(drop=True)


def _format_months(values: FloatArray) -> npt.NDArray[np.object_]:
    """Month indices → ``"YYYY-MM"``; NaN → ``""`` (formats each distinct value once)."""
    uniques, inverse = np.unique(np.nan_to_num(values, nan=-1.0), return_inverse=True)
    labels = np.array(
        ["" if u < 0 else f"{int(u) // 12:04d}-{int(u) % 12 + 1:02d}" for u in uniques],
        dtype=object,
    )
    return labels[inverse]
