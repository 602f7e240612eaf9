"""Shared helpers for the profile tests: a small trained scorecard, hand-made records.

Training takes seconds, so the artifact is built once per session and each test registers
(copies) it into its own model root.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from flask import Flask

from app.services import authorization, model_registry
from ml import synth
from ml.artifacts import generic_specs, save_model, spec_dicts
from ml.cli import fit_and_report, make_estimator
from ml.features import FEATURE_SPECS, build_features
from models import AuthorizationKind, Enterprise, User, db
from models.ingestion import IngestionBatch
from models.records import (
    PublicCreditRecord,
    SocialInsuranceRecord,
    TaxRecord,
    UtilityRecord,
)

AS_OF = dt.date(2026, 11, 15)
NOW = dt.datetime(2026, 11, 15, 8, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session", name="trained_model_dir")
def trained_model_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scorecard trained on 1,500 synthetic enterprises (``DIR/model`` + ``report.json``)."""
    tables = synth.generate(1500, 11)
    truth = tables.pop("truth")
    X = build_features(tables, synth.DEFAULT_AS_OF)
    y = truth.set_index("uscc")["defaulted"].reindex(X.index).to_numpy(dtype=np.int64)
    monotone = {s.name: s.risk_direction for s in FEATURE_SPECS if s.risk_direction}
    model, report = fit_and_report(
        make_estimator("scorecard", monotone=monotone, seed=11),
        X.reset_index(drop=True),
        y,
        seed=11,
        specs=spec_dicts(FEATURE_SPECS),
        monotone=monotone,
        with_cv=False,
    )
    out = tmp_path_factory.mktemp("trained")
    save_model(model, out / "model")
    (out / "report.json").write_text(json.dumps({"auc": report["auc"]}), encoding="utf-8")
    return out


@pytest.fixture(scope="session", name="foreign_model_dir")
def foreign_model_dir_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scorecard trained on an unrelated three-column table."""
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(600, 3)), columns=["alpha", "beta", "gamma"])
    y = (X["alpha"] + rng.normal(size=600) > 0.8).to_numpy(dtype=np.int64)
    model, _ = fit_and_report(
        make_estimator("scorecard", seed=1),
        X,
        y,
        seed=1,
        specs=generic_specs(list(X.columns)),
        monotone={},
        with_cv=False,
    )
    out = tmp_path_factory.mktemp("foreign")
    save_model(model, out / "model")
    return out


@pytest.fixture(name="approved_version_id")
def approved_version_id_fixture(app: Flask, trained_model_dir: Path) -> int:
    """Registers and approves the trained model; returns the version id. (No app context is
    kept open: the web tests' requests need their own.)"""
    with app.app_context():
        version = model_registry.register(trained_model_dir, None)
        model_registry.approve(version, None, recompute=False)
        db.session.commit()
        version_id = version.id
        db.session.remove()
    return version_id


def enterprise_by_user(user_id: int) -> Enterprise:
    user = db.session.get(User, user_id)
    assert user is not None
    found = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == user.organization_id)
    )
    assert found is not None
    return found


def grant_collection(user_id: int, scopes: tuple[str, ...]) -> None:
    user = db.session.get(User, user_id)
    assert user is not None
    authorization.grant(
        user,
        enterprise_by_user(user_id),
        authorization.GrantRequest(kind=AuthorizationKind.COLLECTION, scopes=scopes),
        now=NOW - dt.timedelta(days=30),
    )


def _months(n: int, last: dt.date = AS_OF) -> list[str]:
    out = []
    year, month = last.year, last.month
    for _ in range(n):
        out.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return out[::-1]


def add_records(
    enterprise: Enterprise, *, arrears_months: int = 0, version: int = 1
) -> dict[str, list[Any]]:
    """Eighteen months of tax, social-insurance and electricity records (the last
    ``arrears_months`` of social insurance in arrears) and two public-credit records."""
    batch = IngestionBatch(
        source="tax", provider="test", idempotency_key=uuid.uuid4().hex, content_hash="0" * 64
    )
    db.session.add(batch)
    db.session.flush()
    common = {
        "enterprise_id": enterprise.id,
        "uscc": enterprise.uscc,
        "provider": "test",
        "batch_id": batch.id,
        "content_hash": "0" * 64,
        "version": version,
    }
    made: dict[str, list[Any]] = {"tax": [], "si": [], "util": [], "pc": []}
    months = _months(18)
    for i, month in enumerate(months):
        made["tax"].append(
            TaxRecord(
                **common, period=month, tax_type="VAT", amount_paid=Decimal("13000.00"),
                declared_sales=Decimal(100_000 + 1000 * i), late_filing=i == 3,
                arrears=Decimal(0),
            )
        )  # fmt: skip
        late = i >= len(months) - arrears_months
        made["si"].append(
            SocialInsuranceRecord(
                **common, month=month, insured_headcount=20, amount_due=Decimal("30000.00"),
                amount_paid=Decimal("20000.00") if late else Decimal("30000.00"),
                arrears=Decimal("10000.00") if late else Decimal(0),
            )
        )  # fmt: skip
        made["util"].append(
            UtilityRecord(
                **common, month=month, utility="electricity", consumption=Decimal(5000 + 10 * i),
                amount_billed=Decimal("4000.00"), amount_paid=Decimal("4000.00"),
                days_overdue=0,
            )
        )  # fmt: skip
    # a correction: the first tax month's sales re-sent as version 2
    made["tax"].append(
        TaxRecord(
            **{**common, "version": version + 1}, period=months[0], tax_type="VAT",
            amount_paid=Decimal("13000.00"), declared_sales=Decimal(90_000), late_filing=False,
            arrears=Decimal(0),
        )
    )  # fmt: skip
    made["pc"].append(
        PublicCreditRecord(
            **common, record_id="P-1", record_type="administrative_penalty", severity="general",
            decided_on=dt.date(2026, 5, 1), publication_ends_on=dt.date(2029, 5, 1),
            repaired_on=None,
        )
    )  # fmt: skip
    made["pc"].append(
        PublicCreditRecord(
            **common, record_id="P-2", record_type="commendation", severity="minor",
            decided_on=dt.date(2026, 2, 1), publication_ends_on=dt.date(2027, 2, 1),
            repaired_on=None,
        )
    )  # fmt: skip
    for items in made.values():
        db.session.add_all(items)
    db.session.flush()
    return made


def tables_from(enterprise: Enterprise, made: dict[str, list[Any]], scopes: str) -> dict[str, Any]:
    """The same records as ``ml.schema`` tables, built by hand (not by the service)."""

    def frame(items: list[Any], columns: tuple[str, ...]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    c: (
                        float(getattr(r, c))
                        if isinstance(getattr(r, c), Decimal)
                        else getattr(r, c)
                    )
                    for c in columns
                }
                for r in items
            ]
        )

    meta = ("provider", "batch_id", "version")
    return {
        "enterprises": pd.DataFrame(
            [
                {
                    "uscc": enterprise.uscc,
                    "name": enterprise.name,
                    "region_code": enterprise.region_code,
                    "industry_code": enterprise.industry_code,
                    "founded_on": enterprise.founded_on.isoformat(),
                    "size_class": enterprise.size_class.value,
                    "employees": enterprise.employees,
                    "annual_revenue": float(enterprise.annual_revenue),
                    "authorized_scopes": scopes,
                }
            ]
        ),
        "tax": frame(
            made["tax"],
            (
                "uscc",
                "period",
                "tax_type",
                "amount_paid",
                "declared_sales",
                "late_filing",
                "arrears",
                *meta,
            ),
        ),
        "social_insurance": frame(
            made["si"],
            ("uscc", "month", "insured_headcount", "amount_due", "amount_paid", "arrears", *meta),
        ),
        "utilities": frame(
            made["util"],
            (
                "uscc",
                "month",
                "utility",
                "consumption",
                "amount_billed",
                "amount_paid",
                "days_overdue",
                *meta,
            ),
        ),
        "public_credit": frame(
            made["pc"],
            (
                "uscc",
                "record_id",
                "record_type",
                "severity",
                "decided_on",
                "publication_ends_on",
                "repaired_on",
                *meta,
            ),
        ),
    }
