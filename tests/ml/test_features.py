"""ml.features: hand-built tables with hand-computed feature values."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from ml import features, schema, synth
from ml.features import FEATURE_NAMES, FEATURE_SPECS, build_features, coverage

AS_OF = dt.date(2024, 12, 31)
A, B = "91350100M000100Y43", "91110000600037341L"


def _months(first: str, last: str) -> list[str]:
    return [p.strftime("%Y-%m") for p in pd.period_range(first, last, freq="M")]


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    enterprises = pd.DataFrame(
        {
            "uscc": [A, B],
            "name": ["甲公司", "乙公司"],
            "region_code": ["350100", "110000"],
            "industry_code": ["C13", "F51"],
            "founded_on": ["2020-06-30", "2015-01-01"],
            "size_class": ["small", "micro"],
            "employees": [10, 3],
            "annual_revenue": [1_000_000.0, 500_000.0],
            "authorized_scopes": ["tax;social_insurance;utilities;provident_fund", "tax"],
        }
    )
    months = _months("2024-01", "2024-12")
    sales = [1000.0 * (i + 1) for i in range(12)]
    tax = pd.DataFrame(
        {
            "uscc": A,
            "period": [*months, "2024-06", "2025-01"],
            "tax_type": "VAT",
            "amount_paid": 100.0,
            # 2024-06: version 2 (listed first) corrects version 1 (999,999 sales)
            "declared_sales": [*sales, 999_999.0, 50_000.0],
            "late_filing": [0] * 11 + [1, 0, 1],
            "arrears": [0.0] * 10 + [50.0, 0.0, 0.0, 999.0],
            "provider": "tax",
            "batch_id": "b",
            "version": [1] * 5 + [2] + [1] * 6 + [1, 1],
        }
    )
    si_months = _months("2023-10", "2024-12")
    si_a = pd.DataFrame(
        {
            "uscc": A,
            "month": si_months,
            "insured_headcount": [8] * 3 + [10] * 12,
            "amount_due": [80.0] * 3 + [100.0] * 12,
            "amount_paid": [80.0] * 3 + [100.0] * 5 + [0.0] + [100.0] * 6,
            "arrears": [0.0] * 3 + [0.0] * 5 + [100.0] + [0.0] * 6,
        }
    )
    si_b = pd.DataFrame(  # B did not authorize social insurance: must be ignored
        {
            "uscc": B,
            "month": months[:3],
            "insured_headcount": 3,
            "amount_due": 30.0,
            "amount_paid": 30.0,
            "arrears": 0.0,
        }
    )
    si = pd.concat([si_a, si_b], ignore_index=True).assign(provider="si", batch_id="b", version=1)
    pf = pd.DataFrame(
        {
            "uscc": A,
            "month": ["2024-07", "2024-08", "2024-10", "2024-11", "2024-12"],  # 2024-09 missing
            "contributing_employees": 5,
            "amount": 50.0,
            "arrears": 0.0,
            "provider": "hpf",
            "batch_id": "b",
            "version": 1,
        }
    )
    elec = pd.DataFrame(
        {
            "uscc": A,
            "month": ["2023-10", "2023-11", "2023-12", "2024-10", "2024-11", "2024-12"],
            "utility": "electricity",
            "consumption": [100.0] * 3 + [80.0] * 3,
            "amount_billed": [100.0] * 3 + [80.0] * 3,
            "amount_paid": [100.0] * 3 + [80.0] * 3,
            "days_overdue": 0,
        }
    )
    water = pd.DataFrame(
        {
            "uscc": [A],
            "month": ["2024-12"],
            "utility": "water",
            "consumption": [20.0],
            "amount_billed": [100.0],
            "amount_paid": [50.0],
            "days_overdue": [10],
        }
    )
    utilities = pd.concat([elec, water], ignore_index=True).assign(
        provider="u", batch_id="b", version=1
    )
    rating = pd.DataFrame(
        {
            "uscc": A,
            "year": [2023, 2023, 2024],
            "rating": ["D", "B", "A"],  # 2023 corrected D -> B; 2024 not published until 2025-04
            "provider": "tax",
            "batch_id": "r",
            "version": [1, 2, 1],
        }
    )
    public = pd.DataFrame(
        [
            ("R1", "administrative_penalty", "general", "2024-03-01", "2025-03-01", "", 1),
            ("R2", "administrative_penalty", "general", "2023-01-01", "2024-01-01", "", 1),
            ("R3", "administrative_penalty", "minor", "2024-10-01", "2025-01-01", "2024-11-15", 1),
            ("R4", "dishonest_judgment_debtor", "serious", "2024-06-01", "2026-06-01", "", 1),
            ("R5", "serious_dishonesty_list", "serious", "2025-02-01", "2028-02-01", "", 1),
            ("R6", "commendation", "minor", "2024-01-01", "2027-01-01", "", 1),
            ("R7", "abnormal_operation", "general", "2024-02-01", "2027-02-01", "2025-03-01", 1),
            ("R8", "administrative_penalty", "serious", "2024-05-01", "2027-05-01", "", 1),
            ("R8", "administrative_penalty", "minor", "2024-05-01", "2027-05-01", "", 2),
        ],
        columns=[
            "record_id",
            "record_type",
            "severity",
            "decided_on",
            "publication_ends_on",
            "repaired_on",
            "version",
        ],
    ).assign(uscc=A, provider="creditchina", batch_id="pc")
    return {
        "enterprises": enterprises,
        "tax": tax,
        "tax_credit_rating": rating,
        "social_insurance": si,
        "utilities": utilities,
        "provident_fund": pf,
        "public_credit": public,
    }


def test_columns_follow_feature_specs(tables: dict[str, pd.DataFrame]) -> None:
    frame = build_features(tables, AS_OF)
    at_noon = build_features(tables, pd.Timestamp("2024-12-31 12:00"))
    pd.testing.assert_frame_equal(frame, at_noon)
    assert list(frame.columns) == FEATURE_NAMES
    assert list(frame.index) == [A, B]
    assert frame.index.name == "uscc"
    assert (frame.dtypes == np.float64).all()


def test_tax_features_hand_computed(tables: dict[str, pd.DataFrame]) -> None:
    row = build_features(tables, AS_OF).loc[A]
    # the 2025-01 record (arrears 999, late) is after as_of and ignored
    assert row["tax_arrears_months_12m"] == 1
    assert row["tax_months_since_arrears"] == 1
    assert row["tax_late_filings_12m"] == 1
    assert row["tax_filing_regularity_12m"] == 1.0
    assert row["tax_arrears_to_monthly_sales"] == 0.0  # the latest month has no arrears
    # corrected 2024-06 sales (version 2 = 6000) make sales exactly linear 1000..12000
    assert row["sales_log_12m"] == pytest.approx(math.log1p(12 * 6500))
    assert row["sales_trend_6m"] == pytest.approx(math.log1p(9500) - math.log1p(3500))
    assert row["sales_slope_12m"] == pytest.approx(1000 / 6500)
    assert row["sales_cv_12m"] == pytest.approx(math.sqrt(143 / 12) * 1000 / 6500)
    assert math.isnan(row["sales_yoy_change_6m"])  # no sales a year earlier
    assert row["tax_credit_rating"] == 3.0  # 2023 corrected to B; 2024 not yet published


def test_social_insurance_and_provident_fund_hand_computed(
    tables: dict[str, pd.DataFrame],
) -> None:
    row = build_features(tables, AS_OF).loc[A]
    assert row["si_arrears_months_12m"] == 1
    assert row["si_months_since_arrears"] == 6
    assert row["si_continuity_months"] == 6
    assert row["si_payment_ratio_12m"] == pytest.approx(1100 / 1200)
    assert row["si_months_since_last_payment"] == 0
    assert row["si_headcount_log"] == pytest.approx(math.log1p(10))
    assert row["si_headcount_trend_12m"] == pytest.approx(math.log1p(10) - math.log1p(8))
    assert row["pf_continuity_months"] == 3  # 2024-09 is missing
    assert row["pf_arrears_months_12m"] == 0
    assert row["pf_contributors_log"] == pytest.approx(math.log1p(5))
    assert math.isnan(row["pf_contributor_trend_12m"])


def test_utilities_hand_computed(tables: dict[str, pd.DataFrame]) -> None:
    row = build_features(tables, AS_OF).loc[A]
    assert row["elec_yoy_change_3m"] == pytest.approx(math.log1p(80) - math.log1p(100))
    assert row["util_days_overdue_mean_12m"] == pytest.approx(10 / 4)
    assert row["util_days_overdue_max_12m"] == 10
    assert row["util_unpaid_ratio_12m"] == pytest.approx(50 / 340)


def test_public_credit_counts_only_active_unrepaired(tables: dict[str, pd.DataFrame]) -> None:
    row = build_features(tables, AS_OF).loc[A]
    assert row["pc_general_active"] == 2  # R1 and R7 (repaired only after as_of); R2 expired
    assert row["pc_minor_active"] == 1  # R8 corrected to minor; R3 repaired
    assert row["pc_serious_active"] == 1  # R4; R5 is decided after as_of
    assert row["pc_dishonest_debtor_flag"] == 1
    assert row["pc_serious_list_flag"] == 0
    assert row["pc_abnormal_operation_flag"] == 1
    assert row["pc_licence_revoked_flag"] == 0
    assert row["pc_commendations_active"] == 1


def test_missing_or_unauthorized_source_is_nan_not_zero(tables: dict[str, pd.DataFrame]) -> None:
    frame = build_features(tables, AS_OF)
    row = frame.loc[B]
    by_source = {spec.name: spec.source for spec in FEATURE_SPECS}
    for name, source in by_source.items():
        if source in schema.SCOPES:  # B: tax authorized but no records; SI sent unauthorized
            assert math.isnan(row[name]), name
        elif source == "public_credit":
            assert row[name] == 0.0, name
        else:
            assert not math.isnan(row[name]), name
    assert row["age_years"] == pytest.approx((AS_OF - dt.date(2015, 1, 1)).days / 365.25)
    assert row["authorized_scope_count"] == 1
    assert row["employees_log"] == pytest.approx(math.log1p(3))


def test_absent_tables_give_nan(tables: dict[str, pd.DataFrame]) -> None:
    frame = build_features({"enterprises": tables["enterprises"]}, AS_OF)
    assert frame["sales_log_12m"].isna().all()
    assert (frame["pc_general_active"] == 0).all()
    assert frame["age_years"].notna().all()


def test_records_after_as_of_are_ignored(tables: dict[str, pd.DataFrame]) -> None:
    early = build_features(tables, dt.date(2024, 11, 30)).loc[A]
    assert early["tax_arrears_months_12m"] == 1  # 2024-11 is the as_of month
    assert early["tax_months_since_arrears"] == 0
    assert early["tax_late_filings_12m"] == 0  # the late 2024-12 filing is in the future
    assert early["tax_arrears_to_monthly_sales"] == pytest.approx(50 / (66_000 / 11))
    assert early["pc_minor_active"] == 1  # R8; R3 was repaired on 2024-11-15
    before_repair = build_features(tables, dt.date(2024, 11, 10)).loc[A]
    assert before_repair["pc_minor_active"] == 2  # R3 still counts before its repair


def test_latest_version_wins_whatever_the_row_order(tables: dict[str, pd.DataFrame]) -> None:
    shuffled = {
        name: frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
        for name, frame in tables.items()
    }
    pd.testing.assert_frame_equal(
        build_features(shuffled, AS_OF).loc[[A, B]], build_features(tables, AS_OF)
    )


def test_coverage(tables: dict[str, pd.DataFrame]) -> None:
    cov = coverage(tables, AS_OF).set_index(["uscc", "scope"])
    tax = cov.loc[(A, "tax")]
    assert (tax["first_month"], tax["last_month"]) == ("2024-01", "2024-12")
    assert (tax["months_covered"], tax["gap_months"], tax["lag_months"]) == (12, 0, 0)
    pf = cov.loc[(A, "provident_fund")]
    assert (pf["months_covered"], pf["gap_months"]) == (5, 1)
    si_b = cov.loc[(B, "social_insurance")]
    assert not si_b["authorized"]
    assert si_b["months_covered"] == 3
    assert cov.loc[(B, "tax"), "months_covered"] == 0
    assert cov.loc[(B, "tax"), "first_month"] == ""
    assert list(coverage(tables, AS_OF)["scope"][:4]) == list(schema.SCOPES)


def test_bad_input_names_the_problem(tables: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(schema.SchemaError, match="arrears"):
        build_features({**tables, "tax": tables["tax"].drop(columns="arrears")}, AS_OF)
    bad = tables["social_insurance"].copy()
    bad.loc[0, "month"] = "2024/13"
    with pytest.raises(schema.SchemaError, match=r"'month'.*2024/13"):
        build_features({**tables, "social_insurance": bad}, AS_OF)
    with pytest.raises(schema.SchemaError, match="enterprises"):
        build_features({"tax": tables["tax"]}, AS_OF)


def test_feature_specs_are_consistent() -> None:
    names = [spec.name for spec in FEATURE_SPECS]
    assert len(set(names)) == len(names)
    sources = {*schema.SCOPES, "public_credit", "enterprise"}
    for spec in FEATURE_SPECS:
        assert spec.source in sources
        assert spec.risk_direction in (-1, 0, 1)
        assert spec.label_zh and spec.label_en
        if spec.actionable:
            assert spec.target_value is not None and spec.action_zh and spec.action_en
            assert spec.risk_direction != 0
        else:
            assert spec.target_value is None
    actionable = {spec.name for spec in FEATURE_SPECS if spec.actionable}
    assert {"si_arrears_months_12m", "tax_late_filings_12m", "pf_continuity_months"} <= actionable
    assert features.FEATURES_BY_NAME["age_years"].actionable is False


def test_string_and_categorical_inputs_agree() -> None:
    tables = synth.generate(300, seed=5)
    tables.pop("truth")
    as_strings = {
        name: frame.astype(
            {c: str for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
        )
        for name, frame in tables.items()
    }
    left = build_features(tables, synth.DEFAULT_AS_OF)
    right = build_features(as_strings, synth.DEFAULT_AS_OF)
    pd.testing.assert_frame_equal(left, right)
    assert left.notna().any().all()  # every feature is computed for someone


def test_year_on_year_compares_the_same_calendar_months(tables: dict[str, pd.DataFrame]) -> None:
    util = tables["utilities"]
    util = util[~((util["utility"] == "electricity") & (util["month"] == "2024-12"))].copy()
    util.loc[(util["utility"] == "electricity") & (util["month"] == "2023-12"), "consumption"] = 200
    row = build_features({**tables, "utilities": util}, AS_OF).loc[A]
    # December is not delivered yet this year, so last December (200) is left out too
    assert row["elec_yoy_change_3m"] == pytest.approx(math.log1p(80) - math.log1p(100))


def test_database_shaped_values_give_the_same_features() -> None:
    """The portal reads records from the database: Decimal money, date objects, booleans."""
    from decimal import Decimal

    tables = synth.generate(150, seed=8)
    tables.pop("truth")
    money = {c for columns in schema.MONEY_COLUMNS.values() for c in columns} | {"consumption"}
    dates = {"founded_on", "decided_on", "publication_ends_on", "repaired_on"}
    converted = {}
    for name, frame in tables.items():
        frame = frame.astype(
            {c: str for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
        ).astype(object)
        for column in frame.columns:
            if column in money:
                frame[column] = [Decimal(f"{v:.2f}") for v in frame[column]]
            elif column in dates:
                frame[column] = [
                    dt.date.fromisoformat(v) if isinstance(v, str) and v else None
                    for v in frame[column]
                ]
        if "late_filing" in frame:
            frame["late_filing"] = frame["late_filing"].astype(bool)
        converted[name] = frame
    pd.testing.assert_frame_equal(
        build_features(converted, synth.DEFAULT_AS_OF),
        build_features(tables, synth.DEFAULT_AS_OF),
    )
