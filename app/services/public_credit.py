"""The rule-based public-credit class A/B/C/D (Hebei, 冀政办字〔2022〕54号; DESIGN §3).

* **A** (守信): no dishonesty record in the last year.
* **B** (一般失信): at most 5 general dishonesty records in the last year.
* **C** (严重失信): more than 5 general records in the last year, or any serious record not yet
  repaired — serious-severity records (licence suspended, production halted, …), the
  serious-dishonesty list (严重失信主体名单) and the dishonest-judgment-debtor list
  (失信被执行人, a serious-dishonesty subject by law) whatever severity the provider gave them.
* **D** (黑名单): business licence revoked.

What counts: the latest version of each record (``ml.schema.KEY_COLUMNS``), decided on or
before ``as_of``, still in its publication period (``publication_ends_on`` empty or after
``as_of``) and not repaired by ``as_of``. General records count for a year after their
decision; serious records and a revoked licence count for as long as they are published and
unrepaired. Commendations never count; *minor* records (轻微, exempt from credit sanctions)
do not either — Hebei's classes only know general and serious dishonesty.

Every class comes with its reasons in Chinese and English: a summary line, then each record
that made it so, then each record that would have counted but was repaired or whose
publication ended (so the enterprise sees that its repair worked).

:func:`classify` is vectorized over any number of enterprises (pandas); :func:`classify_one`
is the single-enterprise form. Both take records in the ``ml.schema`` public-credit shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml import schema

GENERAL_LIMIT = 5
"""Up to this many general records in the last year is class B; more is C."""
LOOKBACK_DAYS = 365
CLASSES = ("A", "B", "C", "D")
CLASS_TEXT: dict[str, tuple[str, str]] = {
    "A": ("守信", "trustworthy"),
    "B": ("一般失信", "general dishonesty"),
    "C": ("严重失信", "serious dishonesty"),
    "D": ("黑名单（营业执照被吊销）", "blacklisted (business licence revoked)"),
}
RECORD_TYPE_TEXT: dict[str, tuple[str, str]] = {
    "administrative_penalty": ("行政处罚", "administrative penalty"),
    "dishonest_judgment_debtor": ("失信被执行人", "dishonest judgment debtor"),
    "serious_dishonesty_list": ("严重失信主体名单", "serious-dishonesty list"),
    "abnormal_operation": ("经营异常名录", "abnormal-operation list"),
    "licence_revoked": ("吊销营业执照", "business licence revoked"),
    "commendation": ("表彰", "commendation"),
}
SERIOUS_TYPES = ("serious_dishonesty_list", "dishonest_judgment_debtor")
"""Record types that are serious whatever severity the provider gave them."""
KNOCKOUT_TYPES = ("licence_revoked", "serious_dishonesty_list", "dishonest_judgment_debtor")
"""Active records of these types are knock-out flags for lending."""

# reason ordering: the summary first, then what counts (worst first), then what no longer does
_ORDER = {"licence_revoked": 1, "serious": 2, "general": 3, "repaired": 4, "publication_ended": 5}


@dataclass(frozen=True)
class PublicCreditResult:
    public_credit_class: str
    general_count: int
    serious_count: int
    licence_revoked: bool
    reasons: list[dict[str, Any]] = field(default_factory=list)
    knockouts: list[str] = field(default_factory=list)


def latest_versions(records: pd.DataFrame) -> pd.DataFrame:
    """The highest version of each ``(uscc, record_id)``."""
    if records.empty:
        return records
    version = pd.to_numeric(records["version"], errors="coerce").fillna(1)
    ordered = records.assign(_v=version.to_numpy()).sort_values("_v", kind="stable")
    latest = ordered.drop_duplicates(["uscc", "record_id"], keep="last")
    return latest.drop(columns="_v")


def _dates(values: pd.Series) -> pd.Series:
    """Dates, ISO strings, empty strings or None → datetime64 (NaT for none)."""
    cleaned = values.astype(object).where(values.astype(str).str.strip() != "", None)
    return pd.to_datetime(cleaned, errors="coerce")


def _summary(cls: str, general: int, serious: int) -> dict[str, Any]:
    if cls == "D":
        zh, en = "营业执照已被依法吊销", "The business licence has been revoked"
    elif cls == "C":
        parts_zh, parts_en = [], []
        if serious:
            parts_zh.append(f"存在尚未修复的严重失信行为记录 {serious} 条")
            parts_en.append(f"{serious} serious dishonesty record(s) not yet repaired")
        if general > GENERAL_LIMIT:
            parts_zh.append(f"近1年一般失信行为记录 {general} 条（超过{GENERAL_LIMIT}条）")
            parts_en.append(
                f"{general} general dishonesty records in the last year (more than {GENERAL_LIMIT})"
            )
        zh, en = "；".join(parts_zh), "; ".join(parts_en)
    elif cls == "B":
        zh = f"近1年一般失信行为记录 {general} 条（不超过{GENERAL_LIMIT}条）"
        en = f"{general} general dishonesty record(s) in the last year ({GENERAL_LIMIT} or fewer)"
    else:
        zh, en = "近1年无失信行为记录", "No dishonesty record in the last year"
    return {"code": f"class_{cls}", "text_zh": f"{cls}类：{zh}", "text_en": f"Class {cls}: {en}"}


def _iso(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def _record_reason(code: str, row: Any) -> dict[str, Any]:
    type_zh, type_en = RECORD_TYPE_TEXT.get(row.record_type, (row.record_type, row.record_type))
    decided = _iso(row.decided)
    what_zh = f"{type_zh}（{decided}，记录号 {row.record_id}）"
    what_en = f"{type_en} ({decided}, record {row.record_id})"
    if code == "licence_revoked":
        zh, en = f"营业执照被吊销：{what_zh}", f"Business licence revoked: {what_en}"
    elif code == "serious":
        zh = f"严重失信记录，未修复且在公示期内：{what_zh}"
        en = f"Serious record, not repaired and still published: {what_en}"
    elif code == "general":
        zh, en = f"一般失信记录：{what_zh}", f"General dishonesty record: {what_en}"
    elif code == "repaired":
        day = _iso(row.repaired)
        zh = f"{what_zh} 已于 {day} 完成信用修复，不再计入"
        en = f"{what_en} was repaired on {day} and no longer counts"
    else:
        day = _iso(row.ends)
        zh = f"{what_zh} 公示期已于 {day} 届满，不再计入"
        en = f"{what_en}: its publication period ended on {day}; it no longer counts"
    return {
        "code": code,
        "record_id": str(row.record_id),
        "record_type": str(row.record_type),
        "severity": str(row.severity),
        "decided_on": decided,
        "text_zh": zh,
        "text_en": en,
    }


def classify(records: pd.DataFrame, usccs: Sequence[str], as_of: dt.date) -> pd.DataFrame:
    """Class per enterprise, indexed by ``uscc`` in the order given.

    Columns: ``public_credit_class``, ``general_count``, ``serious_count``,
    ``licence_revoked`` (bool), ``reasons`` (list of dicts: ``code``, ``text_zh``,
    ``text_en`` and, for a record, ``record_id``, ``record_type``, ``severity``,
    ``decided_on``) and ``knockouts`` (list of record types). Records of other enterprises
    are ignored. Raises :class:`ml.schema.SchemaError` if columns are missing.
    """
    index = pd.Index([str(u) for u in usccs], name="uscc")
    n = len(index)
    general = np.zeros(n, dtype=np.int64)
    serious = np.zeros(n, dtype=np.int64)
    revoked = np.zeros(n, dtype=bool)
    detail: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    knockouts: list[list[str]] = [[] for _ in range(n)]

    if len(records):
        schema.check_columns(schema.PUBLIC_CREDIT, records)
        frame = records.assign(uscc=records["uscc"].astype(str))
        frame = latest_versions(frame[frame["uscc"].isin(index)])
        ent = index.get_indexer(frame["uscc"])
        today = pd.Timestamp(as_of)
        decided = _dates(frame["decided_on"])
        ends = _dates(frame["publication_ends_on"])
        repaired = _dates(frame["repaired_on"])
        rtype = frame["record_type"].astype(str).to_numpy()
        severity = frame["severity"].astype(str).to_numpy()

        known = (decided <= today).to_numpy()
        ended = (ends <= today).to_numpy()
        fixed = (repaired <= today).to_numpy()
        active = known & ~ended & ~fixed
        recent = (decided > today - pd.Timedelta(days=LOOKBACK_DAYS)).to_numpy()
        negative = ((rtype != "commendation") & (severity != "minor")) | np.isin(
            rtype, (*SERIOUS_TYPES, "licence_revoked")
        )
        is_revoked = negative & (rtype == "licence_revoked")
        is_serious = (
            negative & ~is_revoked & ((severity == "serious") | np.isin(rtype, SERIOUS_TYPES))
        )
        is_general = negative & ~is_revoked & ~is_serious & recent

        np.add.at(general, ent[active & is_general], 1)
        np.add.at(serious, ent[active & is_serious], 1)
        revoked[ent[active & is_revoked]] = True

        code = np.select(
            [
                active & is_revoked,
                active & is_serious,
                active & is_general,
                known & fixed & (is_revoked | is_serious | is_general),
                known & ended & (is_revoked | is_serious | is_general),
            ],
            ["licence_revoked", "serious", "general", "repaired", "publication_ended"],
            "",
        )
        shown = np.flatnonzero(code != "")
        if len(shown):
            rows = pd.DataFrame(
                {
                    "ent": ent[shown],
                    "code": code[shown],
                    "order": [_ORDER[c] for c in code[shown]],
                    "record_id": frame["record_id"].to_numpy()[shown],
                    "record_type": rtype[shown],
                    "severity": severity[shown],
                    "decided": decided.to_numpy()[shown],
                    "ends": ends.to_numpy()[shown],
                    "repaired": repaired.to_numpy()[shown],
                }
            ).sort_values(["ent", "order", "decided", "record_id"], ascending=[1, 1, 0, 1])
            for row in rows.itertuples(index=False):
                detail[row.ent].append(_record_reason(row.code, row))
        for i, t in zip(ent[active], rtype[active], strict=True):
            if t in KNOCKOUT_TYPES and t not in knockouts[i]:
                knockouts[i].append(t)

    classes = np.select(
        [revoked, (serious > 0) | (general > GENERAL_LIMIT), general > 0], ["D", "C", "B"], "A"
    )
    reasons = [
        [_summary(str(c), int(g), int(s)), *d]
        for c, g, s, d in zip(classes, general, serious, detail, strict=True)
    ]
    return pd.DataFrame(
        {
            "public_credit_class": classes,
            "general_count": general,
            "serious_count": serious,
            "licence_revoked": revoked,
            "reasons": reasons,
            "knockouts": [sorted(k, key=KNOCKOUT_TYPES.index) for k in knockouts],
        },
        index=index,
    )


def classify_one(records: pd.DataFrame, uscc: str, as_of: dt.date) -> PublicCreditResult:
    """:func:`classify` for one enterprise."""
    row = classify(records, [uscc], as_of).iloc[0]
    return PublicCreditResult(
        public_credit_class=str(row["public_credit_class"]),
        general_count=int(row["general_count"]),
        serious_count=int(row["serious_count"]),
        licence_revoked=bool(row["licence_revoked"]),
        reasons=list(row["reasons"]),
        knockouts=list(row["knockouts"]),
    )
