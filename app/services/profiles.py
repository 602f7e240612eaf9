"""Credit profiles: records → ``ml.features`` → the approved model → an immutable snapshot.

A computation reads, for each enterprise, the latest version of every source record (the
tables of ``models.records``, in the shape of ``ml.schema``), keeps only the scopes the
enterprise currently authorizes for collection (an active or paused collection grant; a
revoked or expired one means those records are no longer used), builds the features as of the
computation date, and asks the approved model (:func:`app.services.model_registry.
approved_model`) for PD, score, grade, reasons and the counterfactual. It always adds a new
:class:`models.CreditProfile`; earlier snapshots are never changed (they are the trend).

Without an approved model the snapshot still holds features, coverage, the public-credit class
and the matching facts, but no PD, score or grade.

Recompute hooks
---------------
* on demand: the enterprise's profile page (POST) calls :func:`compute_profile`;
* after records change: ingestion and collection call :func:`records_changed` with the
  enterprise ids whose records they added (after their own flush, before their commit); it
  enqueues one ``profiles.recompute`` job that runs once the caller commits;
* after a model version is approved: :func:`app.services.model_registry.approve` calls
  :func:`enqueue_recompute` for every enterprise.

Functions flush; the caller commits (the job body commits per chunk).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from flask import current_app
from flask_babel import get_locale

from app.jobs import chunked_job, enqueue
from app.services import model_registry, public_credit, workdays
from app.services.model_registry import ServingModel
from ml import schema
from ml.features import FEATURE_NAMES, build_features, coverage
from ml.grades import GradeScale, load_grade_scale
from models import (
    Authorization,
    AuthorizationKind,
    AuthorizationStatus,
    CreditProfile,
    Enterprise,
    Job,
    db,
)
from models.base import utcnow
from models.records import RECORD_MODELS

CHUNK = 2000
"""Enterprises per batch in :func:`compute_all` (bounds memory; one commit per chunk in jobs)."""
RECOMPUTE_JOB = "profiles.recompute"
_LIVE = (AuthorizationStatus.ACTIVE, AuthorizationStatus.PAUSED)


# ---------------------------------------------------------------------------------------------
# Records → ml.schema tables
# ---------------------------------------------------------------------------------------------
def _authorized_scopes(enterprise_ids: Sequence[int], now: dt.datetime) -> dict[int, str]:
    grants = db.session.scalars(
        sa.select(Authorization).where(
            Authorization.enterprise_id.in_(enterprise_ids),
            Authorization.kind == AuthorizationKind.COLLECTION,
            Authorization.revoked_at.is_(None),
        )
    ).all()
    scopes: dict[int, set[str]] = {}
    for grant in grants:
        if grant.status_at(now) in _LIVE:
            scopes.setdefault(grant.enterprise_id, set()).update(grant.scope_list)
    return {eid: ";".join(s for s in schema.SCOPES if s in found) for eid, found in scopes.items()}


def load_tables(
    enterprises: Sequence[Enterprise], now: dt.datetime
) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """The ``ml.schema`` tables of ``enterprises`` (latest record versions only) and the map
    uscc → enterprise id."""
    ids = [e.id for e in enterprises]
    scopes = _authorized_scopes(ids, now)
    tables: dict[str, pd.DataFrame] = {
        schema.ENTERPRISES: pd.DataFrame(
            {
                "uscc": [e.uscc for e in enterprises],
                "name": [e.name for e in enterprises],
                "region_code": [e.region_code for e in enterprises],
                "industry_code": [e.industry_code for e in enterprises],
                "founded_on": [e.founded_on.isoformat() for e in enterprises],
                "size_class": [e.size_class.value for e in enterprises],
                "employees": [e.employees for e in enterprises],
                "annual_revenue": [float(e.annual_revenue) for e in enterprises],
                "authorized_scopes": [scopes.get(e.id, "") for e in enterprises],
            }
        )
    }
    connection = db.session.connection()
    for table, model in RECORD_MODELS.items():
        columns = list(schema.TABLE_COLUMNS[table])
        source = model.__table__
        floats = {*schema.MONEY_COLUMNS.get(table, ()), "consumption"}
        # money as float straight from the driver (no Decimal round trip): ml reads floats
        selected = [
            sa.type_coerce(source.c[c], sa.Float()).label(c) if c in floats else source.c[c]
            for c in columns
        ]
        rows = connection.execute(
            sa.select(*selected).where(source.c.enterprise_id.in_(ids))
        ).fetchall()
        by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
        frame = pd.DataFrame(
            {c: list(values) for c, values in zip(columns, by_column, strict=True)}
        )
        for column in floats & set(columns):
            frame[column] = frame[column].astype(np.float64)
        if "late_filing" in frame:
            frame["late_filing"] = frame["late_filing"].astype(np.int64)
        if len(frame):
            frame = frame.sort_values("version", kind="stable").drop_duplicates(
                list(schema.KEY_COLUMNS[table]), keep="last"
            )
            frame["batch_id"] = frame["batch_id"].astype(str)
        tables[table] = frame.reset_index(drop=True)
    return tables, {e.uscc: e.id for e in enterprises}


# ---------------------------------------------------------------------------------------------
# Matching facts
# ---------------------------------------------------------------------------------------------
def _month_number(values: pd.Series) -> npt.NDArray[np.int64]:
    codes, uniques = pd.factorize(values.astype(str))
    parsed = np.array([int(u[0:4]) * 12 + int(u[5:7]) - 1 for u in uniques], dtype=np.int64)
    return parsed[codes]


def _streak(ent: npt.NDArray[np.int64], month: npt.NDArray[np.int64], good: npt.NDArray[np.bool_],
            n: int) -> npt.NDArray[np.float64]:  # fmt: skip
    """Per enterprise: consecutive months with records that are all ``good``, counted back
    from its latest month (a month without a record breaks the run); NaN without records."""
    out = np.full(n, np.nan)
    if not len(ent):
        return out
    span = int(month.max() - month.min()) + 1
    key = ent * span + (month - month.min())
    cells, inverse = np.unique(key, return_inverse=True)
    cell_good = np.ones(len(cells), dtype=bool)
    np.logical_and.at(cell_good, inverse, good)
    cell_ent = cells // span
    latest = np.full(n, -1, dtype=np.int64)
    np.maximum.at(latest, cell_ent, cells % span)
    back = latest[cell_ent] - cells % span
    order = np.lexsort((back, cell_ent))  # per enterprise, latest month first
    e, b, g = cell_ent[order], back[order], cell_good[order]
    starts = np.r_[0, np.flatnonzero(e[1:] != e[:-1]) + 1]
    rank = np.arange(len(e)) - np.repeat(starts, np.diff(np.r_[starts, len(e)]))
    broken = (b != rank) | ~g
    run = np.bincount(e, minlength=n).astype(np.float64)  # no break: every month counts
    first_break = np.full(n, np.inf)
    np.minimum.at(first_break, e[broken], rank[broken].astype(np.float64))
    run = np.minimum(run, first_break)
    has = latest >= 0
    out[has] = run[has]
    return out


def matching_facts(tables: Mapping[str, pd.DataFrame], usccs: Sequence[str]) -> pd.DataFrame:
    """``annual_sales`` (VAT declared sales over the last 12 months of tax data, CNY),
    ``tax_months`` (continuous months filed without arrears up to the latest tax month) and
    ``social_months`` (continuous months paid in full up to the latest month) per uscc; NaN
    where the enterprise has no such data or does not authorize the scope."""
    index = pd.Index(list(usccs), name="uscc")
    n = len(index)
    sales = np.full(n, np.nan)
    tax_months = np.full(n, np.nan)
    social_months = np.full(n, np.nan)
    tax = tables.get(schema.TAX)
    if tax is not None and len(tax):
        ent = index.get_indexer(tax["uscc"].astype(str))
        known = ent >= 0
        ent, month = ent[known].astype(np.int64), _month_number(tax["period"])[known]
        arrears = tax["arrears"].to_numpy(np.float64)[known]
        tax_months = _streak(ent, month, ~(arrears > 0), n)
        vat = (tax["tax_type"].astype(str) == "VAT").to_numpy()[known]
        if vat.any():
            latest = np.full(n, -1, dtype=np.int64)
            np.maximum.at(latest, ent[vat], month[vat])
            recent = vat & (month > latest[ent] - 12)
            total = np.zeros(n)
            np.add.at(total, ent[recent], tax["declared_sales"].to_numpy(np.float64)[known][recent])
            sales = np.where(latest >= 0, total, np.nan)
    si = tables.get(schema.SOCIAL_INSURANCE)
    if si is not None and len(si):
        ent = index.get_indexer(si["uscc"].astype(str))
        known = ent >= 0
        paid = ~(si["arrears"].to_numpy(np.float64) > 0) & (
            si["amount_paid"].to_numpy(np.float64) >= si["amount_due"].to_numpy(np.float64)
        )
        social_months = _streak(
            ent[known].astype(np.int64), _month_number(si["month"])[known], paid[known], n
        )
    scopes = (
        tables[schema.ENTERPRISES].set_index("uscc")["authorized_scopes"].reindex(index)
        .fillna("").astype(str).str.split(";")
    )  # fmt: skip
    tax_ok = scopes.map(lambda s: "tax" in s).to_numpy(bool)
    si_ok = scopes.map(lambda s: "social_insurance" in s).to_numpy(bool)
    return pd.DataFrame(
        {
            "annual_sales": np.where(tax_ok, sales, np.nan),
            "tax_months": np.where(tax_ok, tax_months, np.nan),
            "social_months": np.where(si_ok, social_months, np.nan),
        },
        index=index,
    )


# ---------------------------------------------------------------------------------------------
# Snapshot assembly
# ---------------------------------------------------------------------------------------------
def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf → None, numpy scalars → Python (PostgreSQL JSON refuses NaN)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _opt_int(value: float) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def _coverage_lists(cov: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    keep = ["scope", "authorized", "months_covered", "first_month", "last_month", "lag_months"]
    out: dict[str, list[dict[str, Any]]] = {}
    for record in cov[["uscc", *keep]].to_dict("records"):
        out.setdefault(str(record.pop("uscc")), []).append(_clean(record))
    return out


def _content_hash(values: Mapping[str, Any]) -> str:
    canonical = json.dumps(dict(values), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _snapshot(
    enterprise_id: int,
    uscc: str,
    now: dt.datetime,
    trigger: str,
    serving: ServingModel | None,
    decision: Mapping[str, Any] | None,
    features: Mapping[str, float],
    cov: list[dict[str, Any]],
    pc: Mapping[str, Any],
    facts: Mapping[str, float],
) -> dict[str, Any]:
    grade = decision["grade"] if decision else None
    values: dict[str, Any] = {
        "enterprise_id": enterprise_id,
        "computed_at": now,
        "as_of": workdays.local_date(now),
        "trigger": trigger,
        "model_version_id": serving.version_id if serving else None,
        "pd": Decimal(f"{decision['pd']:.10f}") if decision else None,
        "score": Decimal(f"{decision['score']:.2f}") if decision else None,
        "grade": grade,
        "grade_rank": serving.model.grades.grades.index(grade) if serving and grade else None,
        "reasons": _clean(decision["reasons"]) if decision else [],
        "counterfactual": _clean(decision["counterfactual"]) if decision else None,
        "features": {k: (None if math.isnan(v) else float(v)) for k, v in features.items()},
        "coverage": cov,
        "public_credit_class": str(pc["public_credit_class"]),
        "public_credit_reasons": _clean(list(pc["reasons"])),
        "knockouts": list(pc["knockouts"]),
        "annual_sales": None
        if math.isnan(facts["annual_sales"])
        else Decimal(f"{facts['annual_sales']:.2f}"),
        "tax_months": _opt_int(facts["tax_months"]),
        "social_months": _opt_int(facts["social_months"]),
    }
    values["content_hash"] = _content_hash(
        {
            "uscc": uscc,
            "model": serving.content_hash if serving else None,
            **{k: v for k, v in values.items() if k not in {"enterprise_id"}},
        }
    )
    return values


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _compute(
    enterprises: Sequence[Enterprise],
    now: dt.datetime,
    trigger: str,
    serving: ServingModel | None,
    *,
    single: bool,
) -> list[dict[str, Any]]:
    tables, _ids = load_tables(enterprises, now)
    as_of = workdays.local_date(now)
    usccs = [e.uscc for e in enterprises]
    X = build_features(tables, as_of)
    cov = _coverage_lists(coverage(tables, as_of))
    pcs = public_credit.classify(tables[schema.PUBLIC_CREDIT], usccs, as_of)
    facts = matching_facts(tables, usccs)
    decisions: list[dict[str, Any] | None] = [None] * len(enterprises)
    if serving is not None:
        model = serving.model
        rows = [
            {k: v for k, v in zip(FEATURE_NAMES, values, strict=True) if not math.isnan(v)}
            for values in X.to_numpy(dtype=np.float64).tolist()
        ]
        if single:
            decisions = [model.decide(rows[0]).to_dict()]
        else:
            predicted = model.predict(X)
            reasons = model.explain(X)
            for i, row in enumerate(rows):
                cf = model.decide(row).counterfactual
                decisions[i] = {
                    "pd": float(predicted["pd"].iloc[i]),
                    "score": float(predicted["score"].iloc[i]),
                    "grade": str(predicted["grade"].iloc[i]),
                    "reasons": [r.to_dict() for r in reasons[i]],
                    "counterfactual": cf.to_dict() if cf else None,
                }
    features = X.to_dict("index")
    pc_rows = pcs.to_dict("index")
    fact_rows = facts.to_dict("index")
    return [
        _snapshot(
            e.id,
            e.uscc,
            now,
            trigger,
            serving,
            decisions[i],
            features[e.uscc],
            cov.get(e.uscc, []),
            pc_rows[e.uscc],
            fact_rows[e.uscc],
        )
        for i, e in enumerate(enterprises)
    ]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def compute_profile(
    enterprise: Enterprise, *, now: dt.datetime | None = None, trigger: str = "on_demand"
) -> CreditProfile:
    """Compute and add one snapshot for ``enterprise`` (flushed). Scores with
    ``RiskModel.decide`` (the single-row path). Raises
    :class:`app.services.model_registry.RegistryError` if the approved artifact is unusable."""
    now = now or utcnow()
    serving = model_registry.approved_model()
    (values,) = _compute([enterprise], now, trigger, serving, single=True)
    profile = CreditProfile(**values)
    db.session.add(profile)
    db.session.flush()
    return profile


def compute_all(
    enterprise_ids: Iterable[int] | None = None,
    *,
    now: dt.datetime | None = None,
    trigger: str = "batch",
    chunk: int = CHUNK,
    commit: bool = False,
) -> int:
    """Add a snapshot for each enterprise (all when ``enterprise_ids`` is None), in chunks,
    scoring each chunk with ``RiskModel.predict``/``explain`` in bulk. Flushes each chunk (or
    commits it with ``commit=True``, for jobs). Returns the number of snapshots added."""
    now = now or utcnow()
    serving = model_registry.approved_model()
    if enterprise_ids is None:
        ids = list(db.session.scalars(sa.select(Enterprise.id).order_by(Enterprise.id)))
    else:
        ids = sorted(set(enterprise_ids))  # unknown ids simply find no enterprise
    added = 0
    for part in _chunks(ids, chunk):
        enterprises = list(
            db.session.scalars(
                sa.select(Enterprise).where(Enterprise.id.in_(part)).order_by(Enterprise.id)
            )
        )
        rows = _compute(enterprises, now, trigger, serving, single=False)
        db.session.execute(sa.insert(CreditProfile), rows)
        added += len(rows)
        if commit:
            db.session.commit()
        else:
            db.session.flush()
    return added


_IN_CHUNK = 5000
"""Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters per statement)."""


def _newest_ids(ids: Sequence[int]) -> sa.Select[Any]:
    return (
        sa.select(sa.func.max(CreditProfile.id))
        .where(CreditProfile.enterprise_id.in_(ids))
        .group_by(CreditProfile.enterprise_id)
    )


def newest_id_column(enterprise_id: Any) -> Any:
    """A correlated SQL column: the id of ``enterprise_id``'s newest snapshot (NULL when it
    has none) — what :func:`latest_profiles` reads, inside another SELECT."""
    newer = sa.orm.aliased(CreditProfile)
    return (
        sa.select(sa.func.max(newer.id))
        .where(newer.enterprise_id == enterprise_id)
        .scalar_subquery()
    )


def latest_profiles(enterprise_ids: Iterable[int]) -> dict[int, CreditProfile]:
    """The newest snapshot per enterprise (enterprises without one are absent)."""
    found: dict[int, CreditProfile] = {}
    for part in _chunks(sorted(set(enterprise_ids)), _IN_CHUNK):
        for profile in db.session.scalars(
            sa.select(CreditProfile).where(CreditProfile.id.in_(_newest_ids(part)))
        ):
            found[profile.enterprise_id] = profile
    return found


def latest_columns(enterprise_ids: Iterable[int], columns: Sequence[str]) -> list[sa.Row[Any]]:
    """``(enterprise_id, *columns)`` of the newest snapshot per enterprise, columns only."""
    selected = [CreditProfile.enterprise_id, *(getattr(CreditProfile, c) for c in columns)]
    return [
        row
        for part in _chunks(sorted(set(enterprise_ids)), _IN_CHUNK)
        for row in db.session.execute(
            sa.select(*selected).where(CreditProfile.id.in_(_newest_ids(part)))
        )
    ]


FACT_COLUMNS = (
    "profile_id",
    "computed_at",
    "model_version_id",
    "grade",
    "grade_rank",
    "pd",
    "public_credit_class",
    "annual_sales",
    "tax_months",
    "social_months",
    "knockouts",
)


def latest_facts(enterprise_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """The newest snapshot's matching facts as a frame indexed by ``enterprise_id`` (all
    enterprises with a profile when ``enterprise_ids`` is None): columns :data:`FACT_COLUMNS`;
    ``pd`` and ``annual_sales`` as float (NaN when absent), months and rank as float too.
    Reads only these columns, so it suits vectorized matching over many enterprises."""
    c = CreditProfile
    columns = (c.enterprise_id, c.id, c.computed_at, c.model_version_id, c.grade, c.grade_rank,
               sa.type_coerce(c.pd, sa.Float()), c.public_credit_class,
               sa.type_coerce(c.annual_sales, sa.Float()), c.tax_months, c.social_months,
               c.knockouts)  # fmt: skip
    if enterprise_ids is None:
        newest = sa.select(sa.func.max(c.id)).group_by(c.enterprise_id).scalar_subquery()
        queries = [sa.select(*columns).where(c.id.in_(newest))]
    else:
        queries = [
            sa.select(*columns).where(c.id.in_(_newest_ids(part)))
            for part in _chunks(sorted(set(enterprise_ids)), _IN_CHUNK)
        ]
    rows = [row for query in queries for row in db.session.execute(query).all()]
    frame = pd.DataFrame(
        [tuple(row) for row in rows], columns=["enterprise_id", *FACT_COLUMNS]
    ).set_index("enterprise_id")
    for column in ("pd", "annual_sales", "grade_rank", "tax_months", "social_months"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    return frame.sort_index()


def latest_profile(enterprise: Enterprise) -> CreditProfile | None:
    return latest_profiles([enterprise.id]).get(enterprise.id)


def history(enterprise: Enterprise, limit: int = 60) -> list[CreditProfile]:
    """Snapshots of ``enterprise``, newest first."""
    return list(
        db.session.scalars(
            sa.select(CreditProfile)
            .where(CreditProfile.enterprise_id == enterprise.id)
            .order_by(CreditProfile.id.desc())
            .limit(limit)
        )
    )


def enqueue_recompute(
    enterprise_ids: Iterable[int] | None = None, *, trigger: str = "records_changed"
) -> Job:
    """Queue a ``profiles.recompute`` job (runs after the caller commits)."""
    ids = None if enterprise_ids is None else sorted(set(enterprise_ids))
    return enqueue(RECOMPUTE_JOB, enterprise_ids=ids, trigger=trigger)


def records_changed(enterprise_ids: Iterable[int]) -> Job | None:
    """Hook for ingestion and collection: call after adding records for these enterprises
    (before committing); their profiles are recomputed by a job after the commit."""
    ids = sorted(set(enterprise_ids))
    return enqueue_recompute(ids, trigger="records_changed") if ids else None


def _plan_recompute(job: Job) -> list[tuple[dict[str, Any], int]]:
    """One chunk per :data:`CHUNK` enterprises (all of them when the job names none)."""
    ids = job.params.get("enterprise_ids")
    if ids is None:
        ids = list(db.session.scalars(sa.select(Enterprise.id).order_by(Enterprise.id)))
    ids = sorted({int(i) for i in ids})
    return [({"ids": part}, len(part)) for part in map(list, _chunks(ids, CHUNK))]


@chunked_job(RECOMPUTE_JOB, plan=_plan_recompute)
def _recompute_chunk(job: Job, payload: dict[str, Any]) -> dict[str, Any]:
    """One chunk: a snapshot per enterprise, committed with the chunk's "done"."""
    trigger = str(job.params.get("trigger") or "records_changed")
    ids = [int(i) for i in payload["ids"]]
    return {"profiles": compute_all(ids, trigger=trigger, now=job.started_at)}


# ---------------------------------------------------------------------------------------------
# Presentation helpers and the report's verification code
# ---------------------------------------------------------------------------------------------
@functools.cache
def _grade_scale() -> GradeScale:
    return load_grade_scale()


def grade_label(grade: str | None) -> str:
    """The grade's label from the grade table, in the current language ("" if unknown)."""
    if not grade:
        return ""
    try:
        band = _grade_scale().band(grade)
    except KeyError:
        return ""
    return band.label_zh if str(get_locale()).startswith("zh") else band.label_en


_CODE = re.compile(r"^([1-9][0-9]{0,17})-([A-Z2-7]{12})$")


def _signature(profile_id: int, content_hash: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    digest = hmac.new(key, f"credit-report:{profile_id}:{content_hash}".encode(), "sha256")
    return base64.b32encode(digest.digest()).decode()[:12]


def verification_code(profile: CreditProfile) -> str:
    """``<profile id>-<12 characters>``: the 12 characters are an HMAC (SECRET_KEY) of the
    profile id and its content hash, so a bank can check a printed report on the platform."""
    return f"{profile.id}-{_signature(profile.id, profile.content_hash)}"


def verify_code(code: str) -> tuple[CreditProfile, Enterprise] | None:
    """The profile and enterprise a genuine code belongs to, else ``None``."""
    match = _CODE.match(code.strip().upper())
    if match is None:
        return None
    profile = db.session.get(CreditProfile, int(match.group(1)))
    if profile is None:
        return None
    if not hmac.compare_digest(_signature(profile.id, profile.content_hash), match.group(2)):
        return None
    enterprise = db.session.get(Enterprise, profile.enterprise_id)
    return (profile, enterprise) if enterprise is not None else None
