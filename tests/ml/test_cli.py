"""``python -m ml train|train-records|score``: happy paths and every bad-input message."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.cli import main

REPORT_KEYS = {
    "auc",
    "ks",
    "gini",
    "brier",
    "ece",
    "n_train",
    "n_test",
    "cv_auc_mean",
    "cv_auc_std",
}


def write_table(path: Path, n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 15, n).round(1)
    region = rng.choice(["north", "south", "east"], n)
    debt = rng.gamma(2, 1, n).round(3)
    logit = -1.5 + 0.5 * debt - 0.04 * (income - 50) + np.where(region == "south", 0.5, 0)
    target = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "bad", "good")
    frame = pd.DataFrame({"income": income, "region": region, "debt": debt, "status": target})
    frame.loc[rng.random(n) < 0.1, "income"] = np.nan
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("table") / "loans.csv"
    write_table(path)
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------- happy paths
@pytest.mark.parametrize("kind", ["scorecard", "gbm"])
def test_train_on_any_csv_writes_model_and_report(kind, table, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code, stdout, err = run(
        capsys, "train", "--table", table, "--target", "status", "--positive", "bad",
        "--model", kind, "--seed", "3", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert set(report) >= REPORT_KEYS
    assert report["n_train"] == 1050 and report["n_test"] == 450
    assert 0.6 < report["auc"] <= 1 and 0.6 < report["cv_auc_mean"] <= 1
    assert report["gini"] == pytest.approx(2 * report["auc"] - 1)
    assert len(report["cv_auc"]) == 5 and report["cv_auc_std"] >= 0
    assert report["categorical_columns"] == ["region"]
    assert {"train", "test", "psi", "monotonicity"} <= set(report)
    assert (out / "model" / "manifest.json").is_file()
    assert "Calibration by decile" in (out / "report.html").read_text()
    assert json.loads(stdout)["auc"] == pytest.approx(report["auc"])


def test_same_seed_same_report(table, tmp_path, capsys) -> None:
    reports = []
    for name in ("a", "b"):
        code, _, err = run(
            capsys, "train", "--table", table, "--target", "status", "--positive", "bad",
            "--model", "scorecard", "--seed", "5", "--out", tmp_path / name,
        )  # fmt: skip
        assert code == 0, err
        reports.append(json.loads((tmp_path / name / "report.json").read_text()))
    assert reports[0]["auc"] == reports[1]["auc"]
    assert reports[0]["cv_auc"] == reports[1]["cv_auc"]


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    from ml import synth

    out = tmp_path_factory.mktemp("records")
    tables = synth.generate(800, seed=11)
    synth.write(tables, out, meta={"as_of": synth.DEFAULT_AS_OF.isoformat(), "seed": 11})
    return out


def test_train_records_then_score(records, tmp_path, capsys) -> None:
    model_dir = tmp_path / "m"
    code, _, err = run(
        capsys, "train-records", "--records", records, "--model", "scorecard", "--out", model_dir
    )
    assert code == 0, err
    report = json.loads((model_dir / "report.json").read_text())
    assert report["auc"] > 0.6 and report["n_train"] + report["n_test"] == 800
    assert report["monotonicity"] and all(r["ok"] for r in report["monotonicity"].values())
    assert {"industry", "size_class"} <= set(report["test"]["segments"])
    scores = tmp_path / "scores.csv"
    code, _, err = run(capsys, "score", "--model", model_dir, "--records", records, "--out", scores)
    assert code == 0, err
    with scores.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 800
    assert list(rows[0]) == ["uscc", "pd", "score", "grade", "reasons"]
    first = rows[0]
    assert 0 < float(first["pd"]) < 1 and len(first["uscc"]) == 18
    reasons = json.loads(first["reasons"])
    assert sum(r["direction"] == "against" for r in reasons) <= 4


# --------------------------------------------------------------------- bad input
def _train_error(capsys, tmp_path, csv_path, *extra: str) -> str:
    code, _, err = run(
        capsys,
        "train",
        "--table",
        csv_path,
        "--model",
        "scorecard",
        "--out",
        tmp_path / "o",
        *extra,
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in err
    return lines[-1]


def test_unknown_target_column(table, tmp_path, capsys) -> None:
    msg = _train_error(capsys, tmp_path, table, "--target", "defaulted")
    assert "no target column 'defaulted'" in msg and "income" in msg


def test_single_class_target(tmp_path, capsys) -> None:
    path = tmp_path / "one.csv"
    pd.DataFrame({"x": range(50), "y": [0] * 50}).to_csv(path, index=False)
    msg = _train_error(capsys, tmp_path, path, "--target", "y")
    assert "target column 'y' has a single class ('0')" in msg


def test_text_target_without_positive(table, tmp_path, capsys) -> None:
    msg = _train_error(capsys, tmp_path, table, "--target", "status")
    assert "name the positive class with --positive" in msg


def test_positive_value_absent(table, tmp_path, capsys) -> None:
    msg = _train_error(capsys, tmp_path, table, "--target", "status", "--positive", "default")
    assert "--positive 'default' does not occur" in msg


def test_garbage_in_numeric_column_names_column_and_line(tmp_path, capsys) -> None:
    path = tmp_path / "garbage.csv"
    frame = write_table(path, n=300)
    frame["debt"] = frame["debt"].astype(object)
    frame.loc[41, "debt"] = "12,5x"
    frame.to_csv(path, index=False)
    msg = _train_error(capsys, tmp_path, path, "--target", "status", "--positive", "bad")
    assert "column 'debt' is numeric but line 43 has non-numeric value '12,5x'" in msg


def test_constant_and_empty_columns_are_dropped_with_a_warning(tmp_path, capsys) -> None:
    path = tmp_path / "const.csv"
    frame = write_table(path, n=600)
    frame["country"] = "CN"
    frame["empty"] = np.nan
    frame.to_csv(path, index=False)
    out = tmp_path / "o"
    code, _, err = run(
        capsys, "train", "--table", path, "--target", "status", "--positive", "bad",
        "--model", "scorecard", "--out", out,
    )  # fmt: skip
    assert code == 0
    assert "warning:" in err and "dropped column 'country': constant ('CN')" in err
    assert "dropped column 'empty': all values are missing" in err
    report = json.loads((out / "report.json").read_text())
    assert report["dropped_columns"] == ["country", "empty"]
    assert "country" not in report["features"]


def test_only_useless_columns_is_an_error(tmp_path, capsys) -> None:
    path = tmp_path / "useless.csv"
    pd.DataFrame({"k": ["a"] * 40, "y": [0, 1] * 20}).to_csv(path, index=False)
    msg = _train_error(capsys, tmp_path, path, "--target", "y")
    assert "no usable feature column" in msg


def test_missing_file(tmp_path, capsys) -> None:
    msg = _train_error(capsys, tmp_path, tmp_path / "nope.csv", "--target", "y")
    assert "nope.csv: no such file" in msg


def test_score_with_a_model_from_another_feature_set(table, records, tmp_path, capsys) -> None:
    out = tmp_path / "tm"
    code, _, _ = run(
        capsys, "train", "--table", table, "--target", "status", "--positive", "bad",
        "--model", "gbm", "--out", out,
    )  # fmt: skip
    assert code == 0
    code, _, err = run(
        capsys, "score", "--model", out, "--records", records, "--out", tmp_path / "s.csv"
    )
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: model ") and "feature set does not match" in line
    assert "input lacks column(s) the model needs: income, region, debt" in line
    assert "tax_filing_regularity_12m" in line


def test_score_with_a_tampered_model(records, tmp_path, capsys, table) -> None:
    out = tmp_path / "tm"
    assert run(capsys, "train", "--table", table, "--target", "status", "--positive", "bad",
               "--model", "scorecard", "--out", out)[0] == 0  # fmt: skip
    (out / "model" / "points_table.csv").write_text("feature,bin\n")
    code, _, err = run(
        capsys, "score", "--model", out, "--records", records, "--out", tmp_path / "s.csv"
    )
    assert code == 2 and "points_table.csv: sha256 does not match" in err


def test_exit_status_through_python_m(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ml", "train", "--table", str(tmp_path / "x.csv"),
         "--target", "y", "--model", "gbm", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'x.csv'}: no such file"


def test_score_a_table_with_a_table_model(table, tmp_path, capsys) -> None:
    out = tmp_path / "tm"
    assert run(capsys, "train", "--table", table, "--target", "status", "--positive", "bad",
               "--model", "scorecard", "--out", out)[0] == 0  # fmt: skip
    new = tmp_path / "new.csv"
    pd.DataFrame(
        {
            "ref": ["a1", "a2"],
            "debt": [0.2, 6.0],
            "income": [70.0, None],
            "region": ["north", "west"],
        }
    ).to_csv(new, index=False)
    scores = tmp_path / "s.csv"
    code, _, err = run(
        capsys, "score", "--model", out, "--table", new, "--id", "ref", "--out", scores
    )
    assert code == 0, err
    result = pd.read_csv(scores)
    assert list(result.columns) == ["ref", "pd", "score", "grade", "reasons"]
    assert result["pd"].iloc[1] > result["pd"].iloc[0]  # much more debt, unknown income
    pd.DataFrame({"debt": [1.0], "region": ["north"]}).to_csv(new, index=False)
    code, _, err = run(capsys, "score", "--model", out, "--table", new, "--out", scores)
    assert code == 2 and "input lacks column(s) the model needs: income" in err
