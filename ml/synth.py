"""Synthetic SME population with records and a known 12-month probability of default.

No public SME data combines tax, social-insurance, utility and provident-fund histories, so
:func:`generate` simulates them from a latent process and knows the truth:

1. **Enterprises**: valid USCC, region (GB/T 2260), industry (GB/T 4754-2017), founding date,
   employees, revenue and the 2011 size class derived from them (``ml/data/*.csv``).
2. **Latent health** per firm and month: a random walk with a firm drift, a share of firms
   that start declining at a random onset, idiosyncratic noise, rare negative shocks, and a
   macro + industry business cycle. **Cash stress** is an AR(1) process pulled up by poor firm
   quality and by a fall in health over the previous 12 months.
3. **Records** are noisy readings of that state: declared sales (seasonal by industry) and
   electricity follow health; headcount and provident-fund contributors follow it with a lag;
   arrears, late filings, utility delays and public-credit events become likelier under stress;
   the tax credit rating reflects quality and the year's stress.
4. **Truth**: the 12-month PD after ``as_of`` is a logistic function of the same state — the
   change in health (last 6 months vs a year earlier), cash stress over the last 12 months
   (softplus: only stress above normal matters), the latest published tax credit rating, age,
   size and active public-credit records — plus a small unobservable term; ``defaulted`` is
   drawn from it. Industry risk acts through more frequent declines, which the records show.
   Because every term is read by several sources, a model on :mod:`ml.features` can approach
   the oracle AUC (``bench/ml_synth.py`` reports how close a plain LightGBM gets).
5. **Mess**: partial authorization (only authorized scopes are delivered), late-arriving months
   at the tail, random missing months and provider outages, corrected records (a wrong
   version 1 followed by version 2), resent duplicate rows and uncorrected outliers.

All simulation is vectorized over enterprises (loops run over months only). The same
``seed`` gives identical tables and byte-identical files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ml import schema, uscc

DEFAULT_AS_OF = dt.date(2025, 12, 31)
DEFAULT_MONTHS = 36
BURN_IN = 15
"""Simulated months before the record window, so 12-month changes exist at its start."""

DATA_DIR = Path(__file__).with_name("data")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
DateArray = npt.NDArray[np.datetime64]


@dataclass(frozen=True)
class Calibration:
    """Coefficients of the generator (calibrated so that, at n = 20,000 over several seeds,
    the default rate is 3–6 % and the oracle AUC 0.78–0.90; see ``bench/ml_synth.py``)."""

    pd_intercept: float = -4.25
    pd_trend: float = 1.7  # per unit fall of log health (last 6 months vs a year earlier)
    pd_stress: float = 1.2  # per unit of softplus(mean stress over the last 12 months)
    pd_rating: float = 1.0  # times the rating offset (A -0.3, B 0, M 0.2, C 0.5, D 1.0)
    pd_age: float = 0.35  # per unit of -log(age in years)
    pd_size: float = 0.15  # per unit of -log(1 + employees)
    pd_noise: float = 0.15  # sd of the unobservable term
    pd_dishonest: float = 1.3
    pd_serious_list: float = 1.3
    pd_abnormal: float = 0.6
    pd_serious_record: float = 0.5
    pd_general_record: float = 0.2
    pd_licence_revoked: float = 3.0
    share_decliners: float = 0.15
    share_partial_authorization: float = 0.22


CAL = Calibration()


# ----------------------------------------------------------------------------- reference data


def _reference() -> dict[str, pd.DataFrame]:
    read = {"dtype": {"region_code": str, "industry_code": str}, "keep_default_na": False}
    return {
        "regions": pd.read_csv(DATA_DIR / "regions.csv", **read),
        "industries": pd.read_csv(DATA_DIR / "industries.csv", **read),
        "sizes": pd.read_csv(DATA_DIR / "size_thresholds.csv", keep_default_na=False),
        "seasonality": pd.read_csv(DATA_DIR / "seasonality.csv").set_index("profile"),
    }


def size_class(
    employees: npt.ArrayLike, revenue: npt.ArrayLike, size_group: npt.ArrayLike
) -> npt.NDArray[np.object_]:
    """2011 SME classification: the largest class whose employee and revenue floors both hold."""
    sizes = _reference()["sizes"].set_index("size_group")
    group = pd.Index(sizes.index).get_indexer(np.asarray(size_group))
    if (group < 0).any():
        raise ValueError("unknown size group")
    emp = np.asarray(employees, dtype=np.float64)
    rev = np.asarray(revenue, dtype=np.float64)
    out = np.full(emp.shape[0], "micro", dtype=object)
    for cls in ("small", "medium", "large"):
        e_floor = sizes[f"{cls}_employees"].to_numpy(np.float64)[group]
        r_floor = sizes[f"{cls}_revenue"].to_numpy(np.float64)[group]
        out[(emp >= e_floor) & (rev >= r_floor)] = cls
    return out


# ----------------------------------------------------------------------------- helpers


def _sigmoid(x: npt.ArrayLike) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64))), dtype=np.float64)


def _month_label(month_idx: npt.ArrayLike) -> list[str]:
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in np.asarray(month_idx, dtype=np.int64)]


def _ar1(rng: np.random.Generator, n: int, months: int, phi: float, sd: float) -> FloatArray:
    out = np.zeros((n, months))
    shocks = rng.normal(0.0, sd, size=(n, months))
    level = shocks[:, 0] / np.sqrt(1 - phi * phi)
    for j in range(months):
        level = phi * level + shocks[:, j] if j else level
        out[:, j] = level
    return out


def _payments(
    rng: np.random.Generator, due: FloatArray, stress: FloatArray, event: float, repay: float
) -> tuple[FloatArray, FloatArray]:
    """Monthly payment stream with an arrears balance, driven by cash stress.

    A month has an arrears event with probability ``sigmoid(event + 1.1 stress)``; then a share
    (30–100 %, or everything — likelier under stress) of the amount due is left unpaid and joins
    the balance. With probability ``sigmoid(repay - 0.6 stress)`` the previous balance is paid
    off. Returns ``(paid, balance_at_month_end)``.
    """
    n, months = due.shape
    events = rng.random((n, months)) < _sigmoid(event + 1.1 * stress)
    share = rng.uniform(0.3, 1.0, size=(n, months))
    share[rng.random((n, months)) < _sigmoid(-1.0 + 0.8 * stress)] = 1.0
    p_repay = _sigmoid(repay - 0.6 * stress)
    repays = rng.random((n, months)) < p_repay
    paid = np.empty_like(due)
    balance_out = np.empty_like(due)
    balance = np.zeros(n)
    for j in range(months):
        unpaid = np.where(events[:, j], due[:, j] * share[:, j], 0.0)
        repaid = np.where(repays[:, j], balance, 0.0)
        balance = balance - repaid + unpaid
        paid[:, j] = due[:, j] - unpaid + repaid
        balance_out[:, j] = balance
    return paid, balance_out


def _cents(x: npt.ArrayLike) -> FloatArray:
    """Money rounded to cents."""
    return np.asarray(np.round(np.asarray(x, dtype=np.float64), 2), dtype=np.float64)


def _categorical(codes: npt.ArrayLike, labels: Sequence[str] | npt.NDArray[Any]) -> pd.Categorical:
    return pd.Categorical.from_codes(
        np.asarray(codes, dtype=np.int64), categories=[str(label) for label in labels]
    )


# ----------------------------------------------------------------------------- the simulation


@dataclass
class _World:
    """Everything simulated, before the mess is applied. Arrays of months are (n, months)."""

    n: int
    months: int
    as_of: dt.date
    ref_month: int  # month index of as_of
    firms: pd.DataFrame
    uscc: npt.NDArray[np.str_]
    quality: FloatArray
    health: FloatArray  # (n, BURN_IN + months)
    stress: FloatArray
    first_month: IntArray  # first month (index into the window) a firm can have records
    season_sales: FloatArray  # (n, BURN_IN + months) multipliers
    season_elec: FloatArray
    industry: IntArray
    region: IntArray
    ref: dict[str, pd.DataFrame]


def _simulate_firms(rng: np.random.Generator, n: int, months: int, as_of: dt.date) -> _World:
    ref = _reference()
    regions, industries = ref["regions"], ref["industries"]
    total = BURN_IN + months
    ref_month = as_of.year * 12 + as_of.month - 1
    cal = ref_month - (total - 1) + np.arange(total)  # month index of each simulated month

    region = rng.choice(len(regions), size=n, p=(w := regions["weight"].to_numpy(float)) / w.sum())
    industry = rng.choice(
        len(industries), size=n, p=(v := industries["weight"].to_numpy(float)) / v.sum()
    )
    quality = rng.normal(0.0, 1.0, size=n)

    # age: at least 1 year; most SMEs are young, a tail is old
    age_years = np.minimum(1.0 + rng.gamma(1.4, 4.5, size=n), 35.0)
    founded = np.array(as_of, dtype="datetime64[D]") - np.round(age_years * 365.25).astype(
        "timedelta64[D]"
    )
    founded_month = founded.astype("datetime64[M]").astype(np.int64) + 1970 * 12
    window_start = ref_month - months + 1
    first_month = np.maximum(founded_month + 1, window_start) - window_start

    group = industries["size_group"].to_numpy()[industry]
    emp_shift = np.select(
        [group == "industry", group == "construction", group == "transport"], [0.7, 0.5, 0.3], 0.0
    )
    employees = np.clip(
        np.round(np.exp(rng.normal(np.log(7.0) + emp_shift + 0.1 * quality, 1.05))), 1, 3000
    ).astype(np.int64)
    revenue_per_emp = industries["revenue_per_employee"].to_numpy(float)[industry]
    revenue = employees * revenue_per_emp * np.exp(rng.normal(-0.1, 0.5, size=n))
    size = size_class(employees, revenue, group)

    # --- latent health: drift, decline after an onset, noise, shocks, cycles
    drift = rng.normal(0.002, 0.004, size=n)
    # riskier industries (base_risk, a logit offset) have more firms in decline
    base_risk = industries["base_risk"].to_numpy(float)[industry]
    decliner = rng.random(n) < _sigmoid(
        np.log(CAL.share_decliners / (1 - CAL.share_decliners)) - 0.3 * quality + 2.0 * base_risk
    )
    onset = rng.integers(BURN_IN - 6, total, size=n)
    decline_rate = rng.gamma(2.0, 0.013, size=n)
    j = np.arange(total)
    steps = drift[:, None] + rng.normal(0.0, 0.03, size=(n, total))
    steps -= np.where(decliner[:, None] & (j[None, :] >= onset[:, None]), decline_rate[:, None], 0)
    shocks = rng.random((n, total)) < 0.003
    steps -= np.where(shocks, rng.uniform(0.2, 0.8, size=(n, total)), 0.0)
    macro = _ar1(rng, 1, total, 0.9, 0.015)[0]
    cycle_beta = industries["cycle_beta"].to_numpy(float)
    industry_cycle = cycle_beta[:, None] * macro[None, :] + _ar1(
        rng, len(industries), total, 0.85, 0.03
    )
    # young firms ramp up over their first two years
    months_since_founding = cal[None, :] - founded_month[:, None]
    ramp = 0.5 * (np.clip(months_since_founding / 24.0, 0.0, 1.0) - 1.0)
    health = np.cumsum(steps, axis=1) + industry_cycle[industry] + ramp

    # --- cash stress
    change12 = np.zeros_like(health)
    change12[:, 12:] = health[:, 12:] - health[:, :-12]
    pull = -0.8 * quality[:, None] + 3.0 * np.maximum(0.0, -change12 - 0.05)
    stress = np.empty_like(health)
    level = pull[:, 0] + rng.normal(0, 0.28, size=n)
    noise = rng.normal(0.0, 0.2, size=(n, total))
    for t in range(total):
        level = 0.7 * level + 0.3 * pull[:, t] + noise[:, t] if t else level
        stress[:, t] = level

    # --- seasonality (sales by industry profile; electricity also by climate)
    seas = ref["seasonality"]
    cal_month = cal % 12
    profiles = seas.loc[industries["season"]].to_numpy(float)  # (industries, 12)
    season_sales = profiles[industry][:, cal_month]
    climate = seas.loc["climate_" + regions["climate"]].to_numpy(float)[region][:, cal_month]
    season_elec = (0.5 + 0.5 * season_sales) * climate

    names = _names(rng, n, regions, industries, region, industry)
    code = uscc.generate(regions["region_code"].to_numpy()[region], rng)
    firms = pd.DataFrame(
        {
            "uscc": code,
            "name": names,
            "region_code": regions["region_code"].to_numpy()[region],
            "industry_code": industries["industry_code"].to_numpy()[industry],
            "founded_on": np.datetime_as_string(founded, unit="D"),
            "size_class": size,
            "employees": employees,
            "annual_revenue": _cents(np.round(revenue, -4)),
            "authorized_scopes": "",
        }
    )
    return _World(
        n=n,
        months=months,
        as_of=as_of,
        ref_month=ref_month,
        firms=firms,
        uscc=code,
        quality=quality,
        health=health,
        stress=stress,
        first_month=first_month.astype(np.int64),
        season_sales=season_sales,
        season_elec=season_elec,
        industry=industry.astype(np.int64),
        region=region.astype(np.int64),
        ref=ref,
    )


_TRADE = list("鑫达华盛恒泰荣宏远通利源丰汇嘉诚信德隆兴昌瑞祥安明聚博创智卓润邦旭辉宇航天金和美")


def _names(
    rng: np.random.Generator,
    n: int,
    regions: pd.DataFrame,
    industries: pd.DataFrame,
    region: npt.NDArray[np.int64],
    industry: npt.NDArray[np.int64],
) -> npt.NDArray[np.str_]:
    trade = np.array(_TRADE)
    first = trade[rng.integers(0, len(trade), size=n)]
    second = trade[rng.integers(0, len(trade), size=n)]
    city = regions["city"].to_numpy().astype(str)[region]
    word = industries["name_word"].to_numpy().astype(str)[industry]
    out = np.char.add(np.char.add(np.char.add(city, first), second), word)
    return np.char.add(out, "有限公司")


# ----------------------------------------------------------------------------- records


class _Recorder:
    """Builds one source's long table from (n, months) matrices over the record window."""

    def __init__(self, world: _World, provider_prefix: str, provider_level: str) -> None:
        self.w = world
        regions = world.ref["regions"]
        codes = regions["region_code"].to_numpy().astype(str)
        key = np.array([c[:2] + "0000" if provider_level == "province" else c[:4] + "00"
                        for c in codes])  # fmt: skip
        uniq, inv = np.unique(key, return_inverse=True)
        self.providers = [f"{provider_prefix}-{u}" for u in uniq]
        self.provider_of_firm = inv[world.region]

    def frame(
        self,
        mask: BoolArray,
        columns: dict[str, FloatArray | IntArray],
        month_column: str,
        extra: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Rows where ``mask`` (n, months) holds; ``columns`` are (n, months) matrices."""
        w = self.w
        firm, month = np.nonzero(mask)
        months = w.ref_month - w.months + 1 + np.arange(w.months)
        labels = _month_label(months)
        prov = self.provider_of_firm[firm]
        batch_codes = prov * w.months + month
        batch_labels = [f"{p}-{lbl.replace('-', '')}" for p in self.providers for lbl in labels]
        data: dict[str, Any] = {
            "uscc": _categorical(firm, w.uscc),
            month_column: _categorical(month, labels),
        }
        for name, matrix in columns.items():
            data[name] = matrix[firm, month]
        if extra:
            data.update(extra)
        data["provider"] = _categorical(prov, self.providers)
        data["batch_id"] = _categorical(batch_codes, batch_labels)
        data["version"] = np.ones(firm.size, dtype=np.int64)
        return pd.DataFrame(data)


def _window(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The record window of an (n, BURN_IN + months) matrix."""
    return x[:, BURN_IN:]


def _tax(rng: np.random.Generator, w: _World, active: BoolArray) -> tuple[pd.DataFrame, dict]:
    ind = w.ref["industries"]
    n, total = w.health.shape
    anchor = w.health[:, [total - 13]]
    revenue = w.firms["annual_revenue"].to_numpy(float)
    sales = (
        (revenue / 12.0)[:, None]
        * w.season_sales
        * np.exp(w.health - anchor)
        * np.exp(rng.normal(0.0, 0.10, size=(n, total)))
    )
    vat_eff = ind["vat_rate"].to_numpy(float)[w.industry] * rng.uniform(0.12, 0.35, size=n)
    vat_due = sales * vat_eff[:, None]
    s = w.stress
    vat_paid, vat_arrears = _payments(rng, vat_due, s, event=-3.6, repay=0.3)
    late = rng.random((n, total)) < _sigmoid(-3.2 + 0.9 * s - 0.3 * w.quality[:, None])

    rec = _Recorder(w, "tax", "province")
    vat = rec.frame(
        active,
        {
            "amount_paid": _cents(_window(vat_paid)),
            "declared_sales": _cents(_window(sales)),
            "late_filing": _window(late).astype(np.int64),
            "arrears": _cents(_window(vat_arrears)),
        },
        "period",
        {"tax_type": "VAT"},
    )
    # corporate income tax: quarterly prepayment in the quarter's last month
    cal = w.ref_month - (total - 1) + np.arange(total)
    quarter_end = np.flatnonzero(cal % 3 == 2)
    q_sales = np.stack([sales[:, max(q - 2, 0) : q + 1].sum(axis=1) for q in quarter_end], axis=1)
    change = np.zeros_like(w.health)
    change[:, 12:] = w.health[:, 12:] - w.health[:, :-12]
    margin = rng.normal(0.06, 0.04, size=w.n)[:, None] + 0.3 * change[:, quarter_end]
    small = np.isin(w.firms["size_class"].to_numpy(), ["micro", "small"])
    rate = np.where(small, 0.05, 0.25)[:, None]
    cit_due = np.maximum(margin, 0.0) * q_sales * rate
    cit_paid, cit_arrears = _payments(rng, cit_due, s[:, quarter_end], event=-3.6, repay=0.3)
    cols_q = np.zeros((n, total), dtype=bool)
    cols_q[:, quarter_end] = True
    full = {name: np.zeros((n, total)) for name in ("paid", "sales", "arrears")}
    full["paid"][:, quarter_end] = cit_paid
    full["sales"][:, quarter_end] = q_sales
    full["arrears"][:, quarter_end] = cit_arrears
    cit = rec.frame(
        active & cols_q[:, BURN_IN:],
        {
            "amount_paid": _cents(_window(full["paid"])),
            "declared_sales": _cents(_window(full["sales"])),
            "late_filing": _window(late).astype(np.int64),
            "arrears": _cents(_window(full["arrears"])),
        },
        "period",
        {"tax_type": "CIT"},
    )
    tax = pd.concat([vat, cit], ignore_index=True)
    tax["tax_type"] = pd.Categorical(tax["tax_type"], categories=list(schema.TAX_TYPES))
    return tax[list(schema.TABLE_COLUMNS[schema.TAX])], {"late": late}


def _rating(
    rng: np.random.Generator, w: _World, late: BoolArray
) -> tuple[pd.DataFrame, npt.NDArray[np.str_]]:
    """Tax credit ratings of the last three published years, and each firm's latest one
    (``""`` if none)."""
    n, total = w.health.shape
    cal = w.ref_month - (total - 1) + np.arange(total)
    latest = (
        w.as_of.year - 1 if w.as_of.month >= schema.RATING_PUBLISHED_MONTH else w.as_of.year - 2
    )
    founded_year = pd.to_datetime(w.firms["founded_on"]).dt.year.to_numpy()
    frames = []
    rec = _Recorder(w, "tax", "province")
    latest_rating = np.full(n, "", dtype="<U1")
    for year in range(latest - 2, latest + 1):
        in_year = (cal // 12) == year
        if in_year.any():
            stress_y = w.stress[:, in_year].mean(axis=1)
            late_y = late[:, in_year].sum(axis=1)
        else:
            stress_y = -0.8 * w.quality
            late_y = np.zeros(n)
        score = -0.6 * w.quality + 0.5 * stress_y + 0.3 * late_y + rng.normal(0.0, 0.5, size=n)
        rating = np.select([score < -0.75, score < 1.1, score < 2.6], ["A", "B", "C"], "D")
        rating = np.where(founded_year == year, "M", rating)
        keep = founded_year <= year
        latest_rating = np.where(keep, rating, latest_rating)
        firm = np.flatnonzero(keep)
        prov = rec.provider_of_firm[firm]
        frames.append(
            pd.DataFrame(
                {
                    "uscc": _categorical(firm, w.uscc),
                    "year": np.full(firm.size, year, dtype=np.int64),
                    "rating": pd.Categorical(rating[firm], categories=list(schema.TAX_RATINGS)),
                    "provider": _categorical(prov, rec.providers),
                    "batch_id": _categorical(prov, [f"{p}-rating-{year}" for p in rec.providers]),
                    "version": np.ones(firm.size, dtype=np.int64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True), latest_rating


def _headcount(rng: np.random.Generator, w: _World) -> FloatArray:
    """Insured headcount: registered employees scaled by lagged health, with small noise."""
    n, total = w.health.shape
    smooth = np.empty_like(w.health)
    level = w.health[:, 0]
    for t in range(total):
        level = 0.75 * level + 0.25 * w.health[:, t]
        smooth[:, t] = level
    coverage = rng.uniform(0.6, 1.0, size=n)
    employees = w.firms["employees"].to_numpy(float)
    base = employees * coverage
    x = base[:, None] * np.exp(0.8 * (smooth - smooth[:, [total - 13]]))
    x *= np.exp(rng.normal(0.0, 0.03, size=(n, total)))
    return np.maximum(np.round(x), 1.0)


def _social_insurance(
    rng: np.random.Generator, w: _World, active: BoolArray, headcount: FloatArray
) -> pd.DataFrame:
    wage = w.ref["regions"]["si_base"].to_numpy(float)[w.region]
    due = headcount * wage[:, None] * 0.30
    s = w.stress
    paid, arrears = _payments(rng, due, s, event=-3.4, repay=0.5)
    rec = _Recorder(w, "si", "city")
    frame = rec.frame(
        active,
        {
            "insured_headcount": _window(headcount).astype(np.int64),
            "amount_due": _cents(_window(due)),
            "amount_paid": _cents(_window(paid)),
            "arrears": _cents(_window(arrears)),
        },
        "month",
    )
    return frame[list(schema.TABLE_COLUMNS[schema.SOCIAL_INSURANCE])]


def _provident_fund(
    rng: np.random.Generator, w: _World, active: BoolArray, headcount: FloatArray
) -> pd.DataFrame:
    share = rng.uniform(0.3, 1.0, size=w.n)
    contributors = np.maximum(np.round(headcount * share[:, None]), 1.0)
    wage = w.ref["regions"]["si_base"].to_numpy(float)[w.region]
    due = contributors * wage[:, None] * 0.24  # 12 % employer + 12 % employee
    s = w.stress
    paid, arrears = _payments(rng, due, s, event=-3.3, repay=0.3)
    rec = _Recorder(w, "hpf", "city")
    frame = rec.frame(
        active,
        {
            "contributing_employees": _window(contributors).astype(np.int64),
            "amount": _cents(_window(paid)),
            "arrears": _cents(_window(arrears)),
        },
        "month",
    )
    return frame[list(schema.TABLE_COLUMNS[schema.PROVIDENT_FUND])]


_PRICES = {"water": 4.5, "electricity": 0.75, "gas": 3.6}


def _utilities(rng: np.random.Generator, w: _World, active: BoolArray) -> pd.DataFrame:
    ind = w.ref["industries"]
    n, total = w.health.shape
    anchor = w.health[:, [total - 13]]
    revenue = w.firms["annual_revenue"].to_numpy(float)
    employees = w.firms["employees"].to_numpy(float)
    activity = np.exp(0.8 * (w.health - anchor))
    kwh = (
        (revenue / 12.0 / 1e4 * ind["kwh_per_10k_sales"].to_numpy(float)[w.industry])[:, None]
        * w.season_elec
        * activity
        * np.exp(rng.normal(0.0, 0.06, size=(n, total)))
    )
    water = (
        (3.0 * employees + 5.0)[:, None]
        * np.exp(0.5 * (w.health - anchor))
        * np.exp(rng.normal(0.0, 0.12, size=(n, total)))
    )
    gas = 0.6 * kwh * np.exp(rng.normal(0.0, 0.1, size=(n, total)))
    has_gas = rng.random(n) < ind["gas_share"].to_numpy(float)[w.industry]
    frames = []
    rec = {
        "water": _Recorder(w, "water", "city"),
        "electricity": _Recorder(w, "grid", "province"),
        "gas": _Recorder(w, "gas", "city"),
    }
    for kind, consumption, mask in (
        ("water", water, active),
        ("electricity", kwh, active),
        ("gas", gas, active & has_gas[:, None]),
    ):
        billed = consumption * _PRICES[kind]
        late = rng.random((n, total)) < _sigmoid(-1.8 + 1.0 * w.stress)
        mean_delay = 5.0 + 12.0 * np.maximum(w.stress, 0.0)
        days = np.where(late, np.minimum(rng.geometric(1.0 / mean_delay), 180), 0)
        paid = np.where(days > 60, billed * rng.uniform(0.0, 0.6, size=(n, total)), billed)
        frames.append(
            rec[kind].frame(
                mask,
                {
                    "consumption": np.round(_window(consumption), 2),
                    "amount_billed": _cents(_window(billed)),
                    "amount_paid": _cents(_window(paid)),
                    "days_overdue": _window(days).astype(np.int64),
                },
                "month",
                {"utility": kind},
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["utility"] = pd.Categorical(out["utility"], categories=list(schema.UTILITY_KINDS))
    for column in ("provider", "batch_id"):  # the three recorders have different categories
        out[column] = out[column].astype("category")
    return out[list(schema.TABLE_COLUMNS[schema.UTILITIES])]


class _PublicType(NamedTuple):
    record_type: str
    severities: tuple[str, ...]
    severity_p: tuple[float, ...]
    rate: float  # events per year at quality 0 and stress 0
    quality_loading: float
    stress_loading: float
    publication_days: int  # 0: by severity for penalties, permanent otherwise
    repair_p: float


_PUBLIC_TYPES = (
    _PublicType("administrative_penalty", ("minor", "general", "serious"), (0.5, 0.4, 0.1),
                0.04, -0.5, 0.6, 0, 0.35),
    _PublicType("dishonest_judgment_debtor", ("serious",), (1.0,), 0.004, -0.3, 1.2, 730, 0.2),
    _PublicType("serious_dishonesty_list", ("serious",), (1.0,), 0.001, -0.5, 1.0, 1095, 0.0),
    _PublicType("abnormal_operation", ("general",), (1.0,), 0.015, -0.4, 0.8, 1095, 0.4),
    _PublicType("licence_revoked", ("serious",), (1.0,), 0.0003, -0.5, 0.8, 0, 0.0),
    _PublicType("commendation", ("minor",), (1.0,), 0.02, 0.6, 0.0, 1095, 0.0),
)  # fmt: skip
_PENALTY_DAYS = {"minor": 90, "general": 365, "serious": 1095}


def _public_credit(rng: np.random.Generator, w: _World) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Public-credit records over the six years before ``as_of`` (recent ones driven by
    stress) and, per firm, the active counts at ``as_of`` that the true PD uses."""
    n = w.n
    as_of = np.datetime64(w.as_of, "D")
    founded = w.firms["founded_on"].to_numpy().astype("datetime64[D]")
    start_old = np.maximum(founded, as_of - np.timedelta64(6 * 365, "D"))
    start_recent = np.maximum(founded, as_of - np.timedelta64(365, "D"))
    years_old = np.maximum((start_recent - start_old).astype(np.float64) / 365.25, 0.0)
    years_recent = (as_of - start_recent).astype(np.float64) / 365.25
    stress_recent = w.stress[:, -12:].mean(axis=1)

    firms, types, sevs, decided, ends, repaired = [], [], [], [], [], []
    for type_name, severities, sev_p, rate, q_load, s_load, days, p_repair in _PUBLIC_TYPES:
        for period_years, start, stress in (
            (years_old, start_old, -0.8 * w.quality),
            (years_recent, start_recent, stress_recent),
        ):
            lam = rate * np.exp(q_load * w.quality + s_load * np.maximum(stress, -2.0))
            count = rng.poisson(lam * period_years)
            firm = np.repeat(np.arange(n), count)
            span = np.maximum((as_of - start).astype(np.int64), 1)[firm]
            when = start[firm] + (rng.random(firm.size) * span).astype("timedelta64[D]")
            sev = np.asarray(severities)[rng.choice(len(severities), size=firm.size, p=sev_p)]
            if days:
                end = when + np.timedelta64(days, "D")
            elif type_name == "administrative_penalty":
                end = when + np.array([_PENALTY_DAYS[s] for s in sev], dtype="timedelta64[D]")
            else:
                end = np.full(firm.size, np.datetime64("NaT"), dtype="datetime64[D]")
            fix = when + rng.integers(30, 540, size=firm.size).astype("timedelta64[D]")
            p_fix = p_repair * _sigmoid(0.5 * w.quality[firm]) * 2 if p_repair else 0.0
            fixed = (rng.random(firm.size) < p_fix) & (fix <= as_of) & (sev != "serious")
            fixed |= (
                (type_name == "dishonest_judgment_debtor")
                & (rng.random(firm.size) < p_repair)
                & (fix <= as_of)
            )
            firms.append(firm)
            types.append(np.full(firm.size, type_name, dtype=object))
            sevs.append(sev.astype(object))
            decided.append(when)
            ends.append(end)
            repaired.append(np.where(fixed, fix, np.datetime64("NaT")))
    firm = np.concatenate(firms)
    rtype = np.concatenate(types)
    sev = np.concatenate(sevs)
    all_when: DateArray = np.concatenate(decided).astype("datetime64[D]")
    order = np.lexsort((all_when.astype(np.int64), firm))
    firm, rtype, sev = firm[order], rtype[order], sev[order]
    when_d: DateArray = all_when[order]
    end_d: DateArray = np.concatenate(ends).astype("datetime64[D]")[order]
    fix_d: DateArray = np.concatenate(repaired).astype("datetime64[D]")[order]

    active = (
        (when_d <= as_of)
        & (np.isnat(end_d) | (end_d > as_of))
        & (np.isnat(fix_d) | (fix_d > as_of))
    )
    counts = pd.DataFrame(
        {
            "dishonest": np.bincount(firm[active & (rtype == "dishonest_judgment_debtor")],
                                     minlength=n) > 0,
            "serious_list": np.bincount(firm[active & (rtype == "serious_dishonesty_list")],
                                        minlength=n) > 0,
            "abnormal": np.bincount(firm[active & (rtype == "abnormal_operation")],
                                    minlength=n) > 0,
            "revoked": np.bincount(firm[active & (rtype == "licence_revoked")], minlength=n) > 0,
            "serious": np.bincount(firm[active & (rtype == "administrative_penalty")
                                        & (sev == "serious")], minlength=n),
            "general": np.bincount(firm[active & (rtype == "administrative_penalty")
                                        & (sev == "general")], minlength=n),
        }
    )  # fmt: skip

    def iso(d: npt.NDArray[np.datetime64]) -> npt.NDArray[np.object_]:
        text = np.datetime_as_string(d, unit="D").astype(object)
        text[np.isnat(d)] = None
        return text

    frame = pd.DataFrame(
        {
            "uscc": _categorical(firm, w.uscc),
            "record_id": [f"PC{i:09d}" for i in range(firm.size)],
            "record_type": pd.Categorical(rtype, categories=list(schema.PUBLIC_RECORD_TYPES)),
            "severity": sev,
            "decided_on": np.datetime_as_string(when_d, unit="D"),
            "publication_ends_on": iso(end_d),
            "repaired_on": iso(fix_d),
            "provider": "creditchina",
            "batch_id": np.char.add("creditchina-", np.datetime_as_string(when_d, unit="M")),
            "version": np.ones(firm.size, dtype=np.int64),
        }
    )
    return frame, counts


_RATING_OFFSET = {"A": -0.3, "B": 0.0, "M": 0.2, "C": 0.5, "D": 1.0, "": 0.0}


def _true_pd(
    rng: np.random.Generator, w: _World, pc: pd.DataFrame, rating: npt.NDArray[np.str_]
) -> FloatArray:
    """12-month PD after ``as_of`` from the state at ``as_of`` (see the module docstring)."""
    h = w.health
    trend = np.clip(h[:, -6:].mean(axis=1) - h[:, -18:-12].mean(axis=1), -1.5, 0.6)
    # only stress above "normal" raises risk: softplus keeps differences among calm firms small
    stress12 = np.logaddexp(0.0, w.stress[:, -12:].mean(axis=1))
    rating_offset = pd.Series(rating).map(_RATING_OFFSET).to_numpy(np.float64)
    age = np.datetime64(w.as_of, "D") - w.firms["founded_on"].to_numpy().astype("datetime64[D]")
    age_years = age.astype(np.float64) / 365.25
    z = (
        CAL.pd_intercept
        - CAL.pd_trend * trend
        + CAL.pd_stress * stress12
        + CAL.pd_rating * rating_offset
        - CAL.pd_age * np.log(age_years)
        - CAL.pd_size * np.log1p(w.firms["employees"].to_numpy(float))
        + CAL.pd_dishonest * pc["dishonest"].to_numpy(float)
        + CAL.pd_serious_list * pc["serious_list"].to_numpy(float)
        + CAL.pd_abnormal * pc["abnormal"].to_numpy(float)
        + CAL.pd_serious_record * pc["serious"].to_numpy(float)
        + CAL.pd_general_record * pc["general"].to_numpy(float)
        + CAL.pd_licence_revoked * pc["revoked"].to_numpy(float)
        + rng.normal(0.0, CAL.pd_noise, size=w.n)
    )
    return _sigmoid(z)


# ----------------------------------------------------------------------------- mess


def _authorization(rng: np.random.Generator, w: _World) -> BoolArray:
    """(n, 4) authorized scopes; a share of firms (a little more of the stressed ones)
    authorizes a strict, non-empty subset."""
    n = w.n
    stress = w.stress[:, -6:].mean(axis=1)
    p = CAL.share_partial_authorization
    partial = rng.random(n) < _sigmoid(np.log(p / (1 - p)) + 0.25 * stress)
    keep_p = np.array([0.85, 0.55, 0.6, 0.4])
    subset = rng.random((n, 4)) < keep_p
    none = ~subset.any(axis=1)
    subset[none, 0] = True
    full = subset.all(axis=1)
    subset[full, 1 + rng.integers(0, 3, size=int(full.sum()))] = False
    return np.where(partial[:, None], subset, True)


def _coverage_mask(rng: np.random.Generator, w: _World, lag_p: Sequence[float]) -> BoolArray:
    """Months a provider has delivered: after founding, minus a late-arriving tail, random
    missing months and, for some firms, a provider outage of 2–4 months."""
    n, m = w.n, w.months
    j = np.arange(m)
    lag = rng.choice(len(lag_p), size=n, p=np.asarray(lag_p))
    mask = (j[None, :] >= w.first_month[:, None]) & (j[None, :] <= m - 1 - lag[:, None])
    mask &= rng.random((n, m)) >= 0.015
    outage = rng.random(n) < 0.03
    start = rng.integers(0, m, size=n)
    length = rng.integers(2, 5, size=n)
    mask &= ~(outage[:, None] & (j[None, :] >= start[:, None])
              & (j[None, :] < (start + length)[:, None]))  # fmt: skip
    return mask


def _corrupt(
    rng: np.random.Generator, frame: pd.DataFrame, value_columns: Sequence[str]
) -> pd.DataFrame:
    """Add corrections, resent duplicates and outliers.

    ~2 % of rows get a wrong version 1 (the delivered row becomes version 2, in a later
    batch); ~0.3 % are sent twice; ~0.2 % carry an uncorrected outlier (×10–100).
    """
    n = len(frame)
    out = frame.copy()
    outlier = np.flatnonzero(rng.random(n) < 0.002)
    for col in value_columns[:1]:
        values = out[col].to_numpy(np.float64, copy=True)
        values[outlier] = np.round(values[outlier] * rng.uniform(10, 100, outlier.size), 2)
        out[col] = values.astype(out[col].dtype)
    corrected = np.flatnonzero(rng.random(n) < 0.02)
    wrong = out.iloc[corrected].copy()
    for col in value_columns:
        values = wrong[col].to_numpy(np.float64, copy=True)
        factor = rng.choice([0.0, 0.5, 2.0, 10.0], size=values.size)
        wrong[col] = np.round(values * factor, 2).astype(out[col].dtype)
    version = out["version"].to_numpy(copy=True)
    version[corrected] = 2
    out["version"] = version
    # the corrected rows arrive in a later batch "<batch>-corr"
    batch = out["batch_id"].cat
    labels = list(batch.categories)
    codes = batch.codes.to_numpy(np.int64, copy=True)
    codes[corrected] += len(labels)
    categories = labels + [f"{label}-corr" for label in labels]
    out["batch_id"] = _categorical(codes, categories)
    wrong["batch_id"] = _categorical(wrong["batch_id"].cat.codes, categories)
    resent_rows = np.flatnonzero(rng.random(n) < 0.003)
    resent = out.iloc[resent_rows]
    # each wrong version 1 sits where the row was first delivered; its fix and resends follow
    position = np.concatenate([corrected, np.arange(n), resent_rows])
    order = np.argsort(position, kind="stable")
    return pd.concat([wrong, out, resent], ignore_index=True).iloc[order].reset_index(drop=True)


# ----------------------------------------------------------------------------- public API


def generate(
    n: int,
    seed: int,
    months: int = DEFAULT_MONTHS,
    as_of: dt.date = DEFAULT_AS_OF,
) -> dict[str, pd.DataFrame]:
    """Simulate ``n`` enterprises and their records for the ``months`` months up to ``as_of``.

    Returns a dict with the tables of :mod:`ml.schema` (``enterprises``, ``tax``,
    ``tax_credit_rating``, ``social_insurance``, ``utilities``, ``provident_fund``,
    ``public_credit``) plus ``truth`` (``uscc, true_pd, defaulted``). Repeated-key columns are
    pandas categoricals. Deterministic in ``seed``.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if not 15 <= months <= 120:
        raise ValueError("months must be between 15 and 120")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(12)]
    world = _simulate_firms(streams[0], n, months, as_of)
    public, pc_counts = _public_credit(streams[1], world)

    authorized = _authorization(streams[3], world)
    combos = [
        ";".join(scope for bit, scope in enumerate(schema.SCOPES) if code >> bit & 1)
        for code in range(2 ** len(schema.SCOPES))
    ]
    scope_code = authorized.astype(np.int64) @ (1 << np.arange(len(schema.SCOPES)))
    world.firms["authorized_scopes"] = np.array(combos, dtype=object)[scope_code]
    # firms without a provident-fund account, or (rarely) social insurance
    size = world.firms["size_class"].to_numpy()
    p_pf = np.select([size == "micro", size == "small", size == "medium"], [0.45, 0.7, 0.85], 0.95)
    has_pf = streams[4].random(n) < p_pf * _sigmoid(1.0 + 0.5 * world.quality) / _sigmoid(1.0)
    has_si = streams[4].random(n) < 0.97

    tax_mask = _coverage_mask(streams[5], world, (0.7, 0.25, 0.05)) & authorized[:, [0]]
    # firms in cash distress stop filing some VAT returns (no declaration, no record)
    tax_mask &= streams[11].random(tax_mask.shape) >= _sigmoid(-5.5 + 1.3 * _window(world.stress))
    si_mask = (
        _coverage_mask(streams[6], world, (0.6, 0.3, 0.1)) & (authorized[:, 1] & has_si)[:, None]
    )
    util_mask = _coverage_mask(streams[7], world, (0.5, 0.4, 0.1)) & authorized[:, [2]]
    pf_mask = (
        _coverage_mask(streams[8], world, (0.6, 0.3, 0.1)) & (authorized[:, 3] & has_pf)[:, None]
    )

    rng = streams[9]
    tax, tax_state = _tax(rng, world, tax_mask)
    rating, latest_rating = _rating(rng, world, tax_state["late"])
    rating = rating[authorized[rating["uscc"].cat.codes.to_numpy(), 0]].reset_index(drop=True)
    headcount = _headcount(rng, world)
    si = _social_insurance(rng, world, si_mask, headcount)
    pf = _provident_fund(rng, world, pf_mask, headcount)
    utilities = _utilities(rng, world, util_mask)

    true_pd = _true_pd(streams[2], world, pc_counts, latest_rating)
    defaulted = (streams[2].random(n) < true_pd).astype(np.int64)

    mess = streams[10]
    tables = {
        schema.ENTERPRISES: world.firms,
        schema.TAX: _corrupt(mess, tax, ["declared_sales", "amount_paid", "arrears"]),
        schema.TAX_CREDIT_RATING: rating,
        schema.SOCIAL_INSURANCE: _corrupt(
            mess, si, ["insured_headcount", "amount_due", "amount_paid", "arrears"]
        ),
        schema.UTILITIES: _corrupt(
            mess, utilities, ["consumption", "amount_billed", "amount_paid"]
        ),
        schema.PROVIDENT_FUND: _corrupt(mess, pf, ["contributing_employees", "amount", "arrears"]),
        schema.PUBLIC_CREDIT: public,
        schema.TRUTH: pd.DataFrame(
            {"uscc": world.uscc, "true_pd": np.round(true_pd, 6), "defaulted": defaulted}
        ),
    }
    for name, frame in tables.items():
        columns = schema.TRUTH_COLUMNS if name == schema.TRUTH else schema.TABLE_COLUMNS[name]
        tables[name] = frame[list(columns)]
    return tables


def oracle_auc(truth: pd.DataFrame) -> float:
    """AUC of ``true_pd`` against realized ``defaulted`` (the best any model can expect)."""
    from sklearn.metrics import roc_auc_score

    y = truth["defaulted"].to_numpy()
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, truth["true_pd"].to_numpy()))


def summary(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Default rate and oracle AUC of a generated population."""
    truth = tables[schema.TRUTH]
    return {
        "default_rate": round(float(truth["defaulted"].mean()), 6),
        "oracle_auc": round(oracle_auc(truth), 6),
    }


def write(
    tables: dict[str, pd.DataFrame],
    out: Path | str,
    fmt: str = "csv",
    meta: dict[str, Any] | None = None,
) -> list[Path]:
    """Write one file per table (``<table>.csv`` or ``.parquet``; ``truth.csv`` always CSV) and
    ``meta.json`` when ``meta`` is given. Returns the paths written."""
    if fmt not in {"csv", "parquet"}:
        raise ValueError(f"unknown format {fmt!r}; use csv or parquet")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        if fmt == "parquet" and name != schema.TRUTH:
            path = out / f"{name}.parquet"
            pq.write_table(table, path)
        else:
            path = out / f"{name}.csv"
            table = table.cast(
                pa.schema(
                    [
                        pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f
                        for f in table.schema
                    ]
                )
            )
            pa_csv.write_csv(table, path, pa_csv.WriteOptions(quoting_style="needed"))
        written.append(path)
    if meta is not None:
        path = out / "meta.json"
        path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ml synth --enterprises N --seed S --out DIR [--months M] [--as-of DATE]
    [--format csv|parquet]``; prints the summary as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m ml synth",
        description="Generate a synthetic SME population with records and known default truth.",
    )
    parser.add_argument(
        "--enterprises", type=int, required=True, metavar="N", help="number of enterprises"
    )
    parser.add_argument("--seed", type=int, required=True, help="same seed, same files")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory for <table>.csv|parquet, truth.csv and meta.json",
    )
    parser.add_argument(
        "--months",
        type=int,
        default=DEFAULT_MONTHS,
        help=f"months of records up to --as-of (15-120, default {DEFAULT_MONTHS})",
    )
    parser.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        default=DEFAULT_AS_OF,
        metavar="YYYY-MM-DD",
        help=f"observation date; default {DEFAULT_AS_OF.isoformat()}",
    )
    parser.add_argument(
        "--format",
        choices=("csv", "parquet"),
        default="csv",
        help="file format of the record tables (truth is always CSV)",
    )
    args = parser.parse_args(argv)
    if args.enterprises < 1:
        parser.error("--enterprises must be at least 1")
    if not 15 <= args.months <= 120:
        parser.error("--months must be between 15 and 120")
    started = time.perf_counter()
    tables = generate(args.enterprises, args.seed, args.months, args.as_of)
    meta: dict[str, Any] = {
        "seed": args.seed,
        "as_of": args.as_of.isoformat(),
        "n": args.enterprises,
        "months": args.months,
        **summary(tables),
    }
    write(tables, args.out, args.format, meta)
    report = {**meta, "seconds": round(time.perf_counter() - started, 2), "out": str(args.out)}
    print(json.dumps(report, ensure_ascii=False))
    return 0
