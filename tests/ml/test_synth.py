"""ml.uscc, ml.schema and ml.synth: valid codes, schema shape, determinism, targets, mess."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml import features, schema, synth, uscc

# ----------------------------------------------------------------------------- USCC


@pytest.mark.parametrize("code", ["91350100M000100Y43", "91110000600037341L"])
def test_known_codes_are_valid(code: str) -> None:
    assert uscc.check_digit(code[:17]) == code[17]
    assert uscc.is_valid(code)


def test_wrong_check_digit_or_characters_are_invalid() -> None:
    assert not uscc.is_valid("91350100M000100Y44")
    assert not uscc.is_valid("91350100M000100Y4")  # 17 characters
    assert not uscc.is_valid("91350100M000100I43")  # I is not in the charset
    with pytest.raises(ValueError, match="17 characters"):
        uscc.check_digit("9135")
    with pytest.raises(ValueError, match="'O'"):
        uscc.check_digit("91350100O000100Y4")


def test_generated_codes_are_valid_unique_and_carry_the_region() -> None:
    regions = np.array(["230102", "441302", "110105"] * 2000)
    codes = uscc.generate(regions, np.random.default_rng(0))
    assert len(set(codes)) == len(codes)
    assert all(uscc.is_valid(c) for c in codes)
    assert all(c[2:8] == r for c, r in zip(codes, regions, strict=True))
    assert all(c[:2] == "91" for c in codes)


# ----------------------------------------------------------------------------- generated tables


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    return synth.generate(1500, seed=42)


def test_tables_have_exactly_the_schema_columns(small: dict[str, pd.DataFrame]) -> None:
    for name, frame in small.items():
        expected = schema.TRUTH_COLUMNS if name == schema.TRUTH else schema.TABLE_COLUMNS[name]
        assert tuple(frame.columns) == expected, name
    assert set(small) == {*schema.TABLE_COLUMNS, schema.TRUTH}
    assert set(schema.TABLE_SCOPE) == set(schema.SOURCE_TABLES)
    assert schema.TABLE_SCOPE["public_credit"] is None


def test_enterprises_are_realistic(small: dict[str, pd.DataFrame]) -> None:
    ent = small["enterprises"]
    assert ent["uscc"].map(uscc.is_valid).all()
    assert ent["uscc"].is_unique
    assert ent["region_code"].str.fullmatch(r"\d{6}").all()
    assert (ent["uscc"].str[2:8] == ent["region_code"]).all()
    assert ent["industry_code"].str.fullmatch(r"[A-T]\d{2}").all()
    assert set(ent["size_class"]) <= set(schema.SIZE_CLASSES)
    assert (ent["size_class"] == "micro").mean() > 0.3  # SME population: mostly micro/small
    founded = pd.to_datetime(ent["founded_on"], format="%Y-%m-%d")
    assert founded.max() <= pd.Timestamp(synth.DEFAULT_AS_OF) - pd.Timedelta(days=365)
    assert (ent["employees"] >= 1).all()
    assert (ent["annual_revenue"] > 0).all()
    scopes = ent["authorized_scopes"].str.split(";")
    assert scopes.map(lambda s: set(s) <= set(schema.SCOPES) and len(s) >= 1).all()
    partial = (scopes.map(len) < len(schema.SCOPES)).mean()
    assert 0.15 <= partial <= 0.30


def test_records_use_schema_values(small: dict[str, pd.DataFrame]) -> None:
    month = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
    assert small["tax"]["period"].astype(str).str.fullmatch(month).all()
    assert set(small["tax"]["tax_type"].astype(str)) == set(schema.TAX_TYPES)
    assert set(small["tax_credit_rating"]["rating"].astype(str)) <= set(schema.TAX_RATINGS)
    assert set(small["utilities"]["utility"].astype(str)) == set(schema.UTILITY_KINDS)
    pc = small["public_credit"]
    assert set(pc["record_type"].astype(str)) <= set(schema.PUBLIC_RECORD_TYPES)
    assert set(pc["severity"]) <= set(schema.SEVERITIES)
    assert (pc["decided_on"] <= synth.DEFAULT_AS_OF.isoformat()).all()
    ends = pc["publication_ends_on"].dropna()
    assert (ends >= pc.loc[ends.index, "decided_on"]).all()
    repaired = pc["repaired_on"].dropna()
    assert (repaired >= pc.loc[repaired.index, "decided_on"]).all()
    assert (repaired <= synth.DEFAULT_AS_OF.isoformat()).all()
    assert pc["record_id"].is_unique
    for table, columns in schema.MONEY_COLUMNS.items():
        for column in columns:
            values = small[table][column].to_numpy(float)
            np.testing.assert_array_equal(values, np.round(values, 2))
    # only authorized scopes are delivered
    ent = small["enterprises"].set_index("uscc")["authorized_scopes"]
    for scope, tables in schema.SCOPE_TABLES.items():
        for table in tables:
            owners = small[table]["uscc"].astype(str).unique()
            assert ent.loc[owners].str.contains(scope).all(), table


def test_records_are_messy(small: dict[str, pd.DataFrame]) -> None:
    as_of_month = synth.DEFAULT_AS_OF.strftime("%Y-%m")
    for table in ("tax", "social_insurance", "utilities", "provident_fund"):
        frame = small[table]
        assert (frame["version"] == 2).mean() > 0.005, table  # corrections
        key = list(schema.KEY_COLUMNS[table])
        assert frame.duplicated(key).any(), table
        month = schema.PERIOD_COLUMN[table]
        last = frame[month].astype(str).groupby(frame["uscc"].astype(str)).max()
        lagging = (last < as_of_month).mean()
        assert 0.1 < lagging < 0.7, table  # late-arriving months at the tail
    si = small["social_insurance"]
    assert (si["arrears"] > 0).any()
    assert (small["utilities"]["days_overdue"] > 0).any()


def test_generation_is_deterministic_to_the_byte(tmp_path: Path) -> None:
    one, two = synth.generate(400, seed=9), synth.generate(400, seed=9)
    for name in one:
        pd.testing.assert_frame_equal(one[name], two[name])
    synth.write(one, tmp_path / "a", "csv")
    synth.write(two, tmp_path / "b", "csv")
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    other = synth.generate(400, seed=10)
    assert not other["truth"]["true_pd"].equals(one["truth"]["true_pd"])


@pytest.fixture(scope="module")
def population() -> dict[str, pd.DataFrame]:
    # bench/ml_synth.py checks n = 20k over more seeds; 12k keeps these tests quick
    return synth.generate(12_000, seed=1)


def test_default_rate_and_oracle_auc_hit_the_targets(population: dict[str, pd.DataFrame]) -> None:
    for tables in (population, synth.generate(12_000, seed=2)):
        stats = synth.summary(tables)
        assert 0.03 <= stats["default_rate"] <= 0.06, stats
        assert 0.78 <= stats["oracle_auc"] <= 0.90, stats


def test_records_warn_before_default(small: dict[str, pd.DataFrame]) -> None:
    tables = {k: v for k, v in small.items() if k != schema.TRUTH}
    frame = features.build_features(tables, synth.DEFAULT_AS_OF)
    truth = small["truth"].set_index("uscc").loc[frame.index]
    bad = truth["defaulted"].to_numpy() == 1
    assert frame.loc[bad, "util_days_overdue_mean_12m"].mean() > 2 * (
        frame.loc[~bad, "util_days_overdue_mean_12m"].mean()
    )
    assert (
        frame.loc[bad, "sales_yoy_change_6m"].mean() < frame.loc[~bad, "sales_yoy_change_6m"].mean()
    )
    assert frame.loc[bad, "tax_credit_rating"].mean() < frame.loc[~bad, "tax_credit_rating"].mean()
    # true PD is no single feature: the best single-feature AUC stays well below the oracle
    from sklearn.metrics import roc_auc_score

    y = truth["defaulted"].to_numpy()
    best = max(
        abs(roc_auc_score(y, frame[c].fillna(frame[c].median())) - 0.5) + 0.5
        for c in frame.columns
        if frame[c].nunique() > 1
    )
    assert best < synth.oracle_auc(truth.reset_index()) - 0.04


def test_size_class_follows_the_2011_thresholds() -> None:
    got = synth.size_class(
        [300, 299, 20, 19, 1000, 50, 5],
        [20_000_000, 20_000_000, 3_000_000, 3_000_000, 400_000_000, 5_000_000, 5_000_000],
        ["industry", "industry", "industry", "industry", "industry", "retail", "retail"],
    )
    assert list(got) == ["medium", "small", "small", "micro", "large", "medium", "micro"]


def test_cli_writes_files_meta_and_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "records"
    argv = ["--enterprises", "60", "--seed", "3", "--out", str(out), "--months", "24"]
    assert synth.main([*argv, "--as-of", "2025-06-30", "--format", "parquet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 60
    names = {p.name for p in out.iterdir()}
    assert {f"{t}.parquet" for t in schema.TABLE_COLUMNS} <= names
    assert {"truth.csv", "meta.json"} <= names
    truth = pd.read_csv(out / "truth.csv")
    assert list(truth.columns) == ["uscc", "true_pd", "defaulted"]
    assert len(truth) == 60
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert {k: meta[k] for k in ("seed", "as_of", "n", "months")} == {
        "seed": 3,
        "as_of": "2025-06-30",
        "n": 60,
        "months": 24,
    }
    assert 0 <= meta["default_rate"] <= 1
    tax = pd.read_parquet(out / "tax.parquet")
    assert tax["period"].astype(str).max() <= "2025-06"
    assert tax["period"].astype(str).min() >= "2023-07"
    with pytest.raises(SystemExit):
        synth.main(["--enterprises", "0", "--seed", "1", "--out", str(out)])


def test_generate_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n must"):
        synth.generate(0, seed=1)
    with pytest.raises(ValueError, match="months"):
        synth.generate(10, seed=1, months=6)
    with pytest.raises(ValueError, match="format"):
        synth.write({}, Path("unused"), "xlsx")
    assert synth.generate(5, seed=1, as_of=dt.date(2024, 3, 15))["enterprises"].shape[0] == 5


def test_every_feature_moves_the_true_pd_the_declared_way(
    population: dict[str, pd.DataFrame],
) -> None:
    """Monotone constraints come from FEATURE_SPECS; the simulator must agree with them."""
    tables = {k: v for k, v in population.items() if k != schema.TRUTH}
    truth = population[schema.TRUTH].set_index("uscc")
    frame = features.build_features(tables, synth.DEFAULT_AS_OF)
    true_pd = truth.loc[frame.index, "true_pd"]
    for spec in features.FEATURE_SPECS:
        values = frame[spec.name]
        seen = values.notna()
        if spec.risk_direction == 0 or values[seen].nunique() < 2:
            continue
        rho = values[seen].rank().corr(true_pd[seen].rank())
        assert np.sign(rho) == spec.risk_direction, (spec.name, rho)
