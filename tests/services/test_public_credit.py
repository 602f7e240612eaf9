"""The Hebei public-credit class A/B/C/D, boundary by boundary, with its reasons."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from app.services.public_credit import classify, classify_one
from ml import synth

AS_OF = dt.date(2026, 11, 15)
U = "91350102MA2XXXXX1A"


def _record(
    record_id: str,
    record_type: str = "administrative_penalty",
    severity: str = "general",
    decided_on: dt.date | str = dt.date(2026, 6, 1),
    publication_ends_on: dt.date | str | None = dt.date(2029, 6, 1),
    repaired_on: dt.date | str | None = None,
    version: int = 1,
    uscc: str = U,
) -> dict[str, Any]:
    return {
        "uscc": uscc,
        "record_id": record_id,
        "record_type": record_type,
        "severity": severity,
        "decided_on": decided_on,
        "publication_ends_on": publication_ends_on,
        "repaired_on": repaired_on,
        "provider": "credit-china",
        "batch_id": "1",
        "version": version,
    }


def _classify(*records: dict[str, Any]) -> Any:
    frame = pd.DataFrame(list(records)) if records else pd.DataFrame(columns=list(_record("x")))
    return classify_one(frame, U, AS_OF)


def _codes(result: Any) -> list[str]:
    return [r["code"] for r in result.reasons]


def test_no_records_is_class_a() -> None:
    result = _classify()
    assert result.public_credit_class == "A"
    assert result.reasons == [
        {
            "code": "class_A",
            "text_zh": "A类：近1年无失信行为记录",
            "text_en": "Class A: No dishonesty record in the last year",
        }
    ]
    assert result.knockouts == []


@pytest.mark.parametrize(("count", "expected"), [(1, "B"), (5, "B"), (6, "C")])
def test_five_general_records_is_b_and_six_is_c(count: int, expected: str) -> None:
    result = _classify(*(_record(f"G{i}") for i in range(count)))
    assert result.public_credit_class == expected
    assert result.general_count == count
    assert _codes(result) == [f"class_{expected}"] + ["general"] * count
    summary = result.reasons[0]
    if expected == "B":
        assert (
            f"{count} general dishonesty record(s) in the last year (5 or fewer)"
            in (summary["text_en"])
        )
        assert f"近1年一般失信行为记录 {count} 条（不超过5条）" in summary["text_zh"]
    else:
        assert "6 general dishonesty records in the last year (more than 5)" in summary["text_en"]
    assert "G0" in result.reasons[1]["text_en"] and "行政处罚" in result.reasons[1]["text_zh"]


def test_general_records_older_than_a_year_do_not_count() -> None:
    result = _classify(*(_record(f"G{i}", decided_on=dt.date(2025, 11, 14)) for i in range(7)))
    assert result.public_credit_class == "A"
    assert result.general_count == 0


def test_serious_record_unrepaired_is_c_and_repaired_no_longer_counts() -> None:
    unrepaired = _classify(_record("S1", severity="serious", decided_on=dt.date(2024, 1, 10)))
    assert unrepaired.public_credit_class == "C"
    assert _codes(unrepaired) == ["class_C", "serious"]
    assert "1 serious dishonesty record(s) not yet repaired" in unrepaired.reasons[0]["text_en"]
    assert "S1" in unrepaired.reasons[1]["text_en"]

    repaired = _classify(
        _record("S1", severity="serious", decided_on=dt.date(2024, 1, 10)),
        _record(
            "S1",
            severity="serious",
            decided_on=dt.date(2024, 1, 10),
            repaired_on=dt.date(2026, 3, 1),
            version=2,
        ),
    )
    assert repaired.public_credit_class == "A"
    assert _codes(repaired) == ["class_A", "repaired"]
    assert "repaired on 2026-03-01" in repaired.reasons[1]["text_en"]
    assert "已于 2026-03-01 完成信用修复" in repaired.reasons[1]["text_zh"]


def test_a_repair_dated_after_as_of_does_not_count_yet() -> None:
    result = _classify(
        _record("S1", severity="serious", repaired_on=dt.date(2026, 12, 1)),
    )
    assert result.public_credit_class == "C"


def test_listed_as_dishonest_or_on_the_serious_list_is_serious_whatever_the_severity() -> None:
    result = _classify(
        _record("L1", record_type="serious_dishonesty_list", severity="general"),
        _record("L2", record_type="dishonest_judgment_debtor", severity="general"),
    )
    assert result.public_credit_class == "C"
    assert result.serious_count == 2
    assert result.knockouts == ["serious_dishonesty_list", "dishonest_judgment_debtor"]


def test_records_past_their_publication_end_stop_counting() -> None:
    result = _classify(
        _record("S1", severity="serious", publication_ends_on=dt.date(2026, 11, 15)),
        _record("G1", publication_ends_on="2026-10-01"),
    )
    assert result.public_credit_class == "A"
    assert _codes(result) == ["class_A", "publication_ended", "publication_ended"]
    by_record = {r.get("record_id"): r for r in result.reasons}
    assert "publication period ended on 2026-11-15" in by_record["S1"]["text_en"]
    assert "公示期已于 2026-11-15 届满" in by_record["S1"]["text_zh"]
    assert "ended on 2026-10-01" in by_record["G1"]["text_en"]


def test_licence_revoked_is_d() -> None:
    result = _classify(
        _record(
            "R1",
            record_type="licence_revoked",
            severity="serious",
            decided_on="2026-09-01",
            publication_ends_on="",
        ),
        _record("S1", severity="serious"),
    )
    assert result.public_credit_class == "D"
    assert result.licence_revoked
    assert _codes(result) == ["class_D", "licence_revoked", "serious"]
    assert result.reasons[0]["text_en"] == "Class D: The business licence has been revoked"
    assert result.reasons[0]["text_zh"] == "D类：营业执照已被依法吊销"
    assert result.knockouts == ["licence_revoked"]


def test_commendations_minor_records_and_future_decisions_do_not_count() -> None:
    result = _classify(
        _record("C1", record_type="commendation", severity="minor"),
        _record("M1", severity="minor"),
        _record("F1", severity="serious", decided_on=dt.date(2026, 12, 1)),
    )
    assert result.public_credit_class == "A"
    assert _codes(result) == ["class_A"]


def test_other_enterprises_records_are_ignored() -> None:
    other = "91350102MA2YYYYY2B"
    frame = pd.DataFrame([_record("X", severity="serious", uscc=other)])
    assert classify_one(frame, U, AS_OF).public_credit_class == "A"
    assert classify_one(frame, other, AS_OF).public_credit_class == "C"


def test_vectorized_equals_one_by_one_on_a_synthetic_population() -> None:
    tables = synth.generate(400, 21)
    records = tables["public_credit"]
    usccs = tables["enterprises"]["uscc"].astype(str).tolist()
    as_of = synth.DEFAULT_AS_OF
    batch = classify(records, usccs, as_of)
    assert list(batch.index) == usccs
    assert set(batch["public_credit_class"]) >= {"A", "B"}
    for uscc in usccs[::10]:
        one = classify_one(records, uscc, as_of)
        row = batch.loc[uscc]
        assert one.public_credit_class == row["public_credit_class"]
        assert one.reasons == row["reasons"]
        assert one.knockouts == row["knockouts"]
