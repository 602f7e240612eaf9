"""Objections and credit repair: deadlines in working days, corrections by new versions,
reasons, evidence checks, markers, and repairs that stop a record from counting."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from app.services import credit_repair, objections, profiles
from app.services.accounts import AccountError, PermissionRefused
from app.services.objections import Upload
from models import (
    AuditEvent,
    CreditProfile,
    Objection,
    ObjectionEvidence,
    ObjectionStatus,
    OrgKind,
    RepairStatus,
    Role,
    User,
    db,
)
from models.records import PublicCreditRecord, SocialInsuranceRecord, TaxRecord
from tests.conftest import Factory
from tests.services.test_profiles_support import (
    add_records,
    enterprise_by_user,
    grant_collection,
)

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 16, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Beijing
PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _end_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=SHANGHAI).astimezone(dt.UTC)


def _setup(factory: Factory) -> tuple[User, User, int]:
    """An enterprise admin with records (the last 3 social-insurance months in arrears) and
    an office officer; returns them and the enterprise id."""
    account = factory.enterprise()
    office_account = factory.user(OrgKind.OFFICE, Role.OFFICER)
    grant_collection(account.user_id, ("social_insurance", "tax", "utilities"))
    enterprise = enterprise_by_user(account.user_id)
    add_records(enterprise, arrears_months=3)
    profiles.compute_profile(enterprise, now=NOW)
    db.session.commit()
    user, office = (
        db.session.get(User, account.user_id),
        db.session.get(User, office_account.user_id),
    )
    assert user is not None and office is not None
    return user, office, enterprise.id


def _latest_si(enterprise_id: int) -> SocialInsuranceRecord:
    return db.session.scalars(
        sa.select(SocialInsuranceRecord)
        .where(SocialInsuranceRecord.enterprise_id == enterprise_id)
        .order_by(SocialInsuranceRecord.month.desc(), SocialInsuranceRecord.version.desc())
    ).first()


# Deadlines ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filed_local", "flag_day", "decide_day", "decide_day_other_unit"),
    [
        # Saturday 14 Feb 2026 is a make-up working day, the last before the Spring Festival
        # holiday (15–23 Feb): every deadline lands after it.
        (dt.datetime(2026, 2, 14, 16, 30), dt.date(2026, 2, 24), dt.date(2026, 2, 26),
         dt.date(2026, 3, 3)),
        # Wednesday 30 Sep 2026, before National Day (1–7 Oct); Sat 10 Oct is a working day.
        (dt.datetime(2026, 9, 30, 9, 0), dt.date(2026, 10, 8), dt.date(2026, 10, 10),
         dt.date(2026, 10, 15)),
    ],
)  # fmt: skip
def test_deadlines_count_working_days_across_holidays(
    app_ctx: Flask,
    factory: Factory,
    filed_local: dt.datetime,
    flag_day: dt.date,
    decide_day: dt.date,
    decide_day_other_unit: dt.date,
) -> None:
    user, office, enterprise_id = _setup(factory)
    filed = filed_local.replace(tzinfo=SHANGHAI).astimezone(dt.UTC)
    record = _latest_si(enterprise_id)
    objection = objections.file(
        user, text="欠费记录有误", table="social_insurance", record_id=record.id, now=filed
    )
    assert objection.flag_by == _end_of(flag_day)
    assert objection.decide_by == _end_of(decide_day)
    # another unit must verify: seven working days from filing (art. 39)
    objections.flag(office, objection, needs_other_unit=True, now=filed + dt.timedelta(hours=1))
    assert objection.status is ObjectionStatus.FLAGGED
    assert objection.decide_by == _end_of(decide_day_other_unit)


def test_queue_shows_time_left_and_overdue_items_first(app_ctx: Flask, factory: Factory) -> None:
    user, office, enterprise_id = _setup(factory)
    record = _latest_si(enterprise_id)
    tax = db.session.scalars(
        sa.select(TaxRecord).where(TaxRecord.enterprise_id == enterprise_id)
    ).first()
    old = objections.file(
        user, text="旧异议", table="tax", record_id=tax.id, now=NOW - dt.timedelta(days=14)
    )
    new = objections.file(
        user, text="新异议", table="social_insurance", record_id=record.id, now=NOW
    )
    objections.flag(office, old, now=NOW - dt.timedelta(days=13))
    queue = objections.queue(NOW + dt.timedelta(hours=1))
    assert [i.objection.id for i in queue] == [old.id, new.id]
    assert queue[0].overdue and queue[0].stage == "decide" and queue[0].days_left < 0
    assert not queue[1].overdue and queue[1].stage == "flag" and queue[1].days_left == 1
    assert queue[1].decision_days_left == 3


# Deciding -----------------------------------------------------------------------------------
def test_upheld_objection_adds_a_version_keeps_the_old_and_recomputes(
    app_ctx: Flask, factory: Factory
) -> None:
    user, office, enterprise_id = _setup(factory)
    record = _latest_si(enterprise_id)
    before = profiles.latest_profiles([enterprise_id])[enterprise_id]
    assert before.social_months == 0  # the last month is in arrears
    objection = objections.file(
        user, text="该月已足额缴纳", table="social_insurance", record_id=record.id,
        uploads=[Upload("回单.pdf", PDF)], now=NOW,
    )  # fmt: skip
    objections.flag(office, objection, now=NOW)
    objections.decide(
        office, objection, uphold=True, reason="经社保部门核实",
        corrections={"amount_paid": "30000", "arrears": "0"}, now=NOW + dt.timedelta(hours=2),
    )  # fmt: skip
    db.session.commit()

    versions = db.session.scalars(
        sa.select(SocialInsuranceRecord)
        .where(SocialInsuranceRecord.enterprise_id == enterprise_id,
               SocialInsuranceRecord.month == record.month)
        .order_by(SocialInsuranceRecord.version)
    ).all()  # fmt: skip
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].arrears == Decimal("10000.00")  # the disputed version is untouched
    assert versions[1].arrears == Decimal("0.00") and versions[1].amount_paid == Decimal("30000.00")
    assert objection.status is ObjectionStatus.UPHELD
    assert objection.corrected_record_id == versions[1].id
    assert objection.correction == {
        "amount_paid": ["20000.00", "30000.00"],
        "arrears": ["10000.00", "0.00"],
    }
    after = profiles.latest_profiles([enterprise_id])[enterprise_id]
    assert after.id != before.id and after.trigger == "objection"
    assert after.social_months == 1
    actions = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.object_type == "objection")
    ).all()
    assert actions == ["objection.file", "objection.flag", "objection.decide"]


def test_upholding_needs_a_corrected_value_and_checks_it(app_ctx: Flask, factory: Factory) -> None:
    user, office, enterprise_id = _setup(factory)
    record = _latest_si(enterprise_id)
    objection = objections.file(
        user, text="有误", table="social_insurance", record_id=record.id, now=NOW
    )
    with pytest.raises(AccountError, match="nothing differs"):
        objections.decide(office, objection, uphold=True, corrections={}, now=NOW)
    with pytest.raises(AccountError) as bad:
        objections.decide(office, objection, uphold=True, corrections={"arrears": "-5"}, now=NOW)
    assert bad.value.field == "arrears"
    assert objection.status is ObjectionStatus.FILED


def test_rejection_needs_a_reason(app_ctx: Flask, factory: Factory) -> None:
    user, office, _enterprise_id = _setup(factory)
    objection = objections.file(user, text="评级不公", now=NOW)  # the profile
    with pytest.raises(AccountError) as refused:
        objections.decide(office, objection, uphold=False, reason="  ", now=NOW)
    assert refused.value.field == "reason"
    assert objection.status is ObjectionStatus.FILED
    objections.decide(office, objection, uphold=False, reason="评级依据真实数据", now=NOW)
    assert objection.status is ObjectionStatus.REJECTED and objection.reason == "评级依据真实数据"
    # The office heard of the filing; the enterprise hears the decision and its reason.
    from app.services import notifications
    from models import Notification

    heard = {
        n.user_id: (n.kind, notifications.text_of(n), n.params["ref"])
        for n in db.session.scalars(sa.select(Notification))
    }
    assert heard[office.id][0] == "objection.filed"
    assert heard[user.id] == (
        "objection.rejected",
        "Your objection was rejected: 评级依据真实数据",
        objection.id,
    )
    with pytest.raises(AccountError, match="already been decided"):
        objections.decide(office, objection, uphold=True, now=NOW)


def test_only_office_officers_decide_and_only_enterprises_file(
    app_ctx: Flask, factory: Factory
) -> None:
    user, _office, _enterprise_id = _setup(factory)
    viewer = db.session.get(User, factory.user(OrgKind.OFFICE, Role.VIEWER).user_id)
    bank = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    objection = objections.file(user, text="有误", now=NOW)
    for actor in (viewer, bank, user):
        with pytest.raises(PermissionRefused):
            objections.flag(actor, objection, now=NOW)
    with pytest.raises(PermissionRefused):
        objections.file(bank, text="x", now=NOW)


# Evidence -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (Upload("big.pdf", b"%PDF-" + b"0" * (5 * 1024 * 1024)), "larger than 5 MB"),
        (Upload("fake.pdf", b"MZ\x90\x00 this is an executable"), "not a PDF, PNG or JPEG"),
        (Upload("picture.exe", PNG), "not a PDF, PNG or JPEG"),
        (Upload("empty.png", b""), "is empty"),
    ],
)
def test_bad_evidence_is_refused_and_nothing_is_stored(
    app_ctx: Flask, factory: Factory, upload: Upload, message: str
) -> None:
    user, _office, enterprise_id = _setup(factory)
    record = _latest_si(enterprise_id)
    folder = objections.evidence_dir()
    files_before = set(folder.iterdir()) if folder.exists() else set()
    with pytest.raises(AccountError, match=message) as refused:
        objections.file(
            user, text="有误", table="social_insurance", record_id=record.id,
            uploads=[Upload("ok.pdf", PDF), upload], now=NOW,
        )  # fmt: skip
    assert refused.value.field == "evidence"
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Objection)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ObjectionEvidence)) == 0
    assert (set(folder.iterdir()) if folder.exists() else set()) == files_before


def test_evidence_is_kept_under_the_instance_path_with_its_hash(
    app_ctx: Flask, factory: Factory
) -> None:
    user, office, _enterprise_id = _setup(factory)
    other = db.session.get(User, factory.enterprise().user_id)
    objection = objections.file(
        user, text="有误", uploads=[Upload("C:\\scans\\回单.png", PNG)], now=NOW
    )
    (evidence,) = objection.evidence
    assert evidence.filename == "回单.png" and evidence.content_type == "image/png"
    path = objections.evidence_path(evidence)
    assert path.read_bytes() == PNG
    assert Path(app_ctx.instance_path) in path.parents and "static" not in path.parts
    import hashlib

    assert evidence.sha256 == hashlib.sha256(PNG).hexdigest()
    assert objections.evidence_for(office, evidence.id)[0] is evidence
    assert objections.evidence_for(user, evidence.id)[0] is evidence
    with pytest.raises(LookupError):
        objections.evidence_for(other, evidence.id)


# Ownership and markers ----------------------------------------------------------------------
def test_an_enterprise_cannot_object_to_anothers_record(app_ctx: Flask, factory: Factory) -> None:
    _user, _office, enterprise_id = _setup(factory)
    record = _latest_si(enterprise_id)
    other = db.session.get(User, factory.enterprise().user_id)
    with pytest.raises(LookupError):
        objections.file(other, text="x", table="social_insurance", record_id=record.id, now=NOW)
    assert objections.for_enterprise(other) == []


def test_marks_cover_every_version_while_open_and_vanish_after(
    app_ctx: Flask, factory: Factory
) -> None:
    user, office, enterprise_id = _setup(factory)
    record = _latest_si(enterprise_id)
    assert not objections.marks_for(enterprise_id)
    objection = objections.file(
        user, text="有误", table="social_insurance", record_id=record.id, now=NOW
    )
    marks = objections.marks_for(enterprise_id)
    assert marks.has(record) and marks.profile is None
    with pytest.raises(AccountError, match="already open"):
        objections.file(user, text="again", table="social_insurance", record_id=record.id, now=NOW)
    objections.decide(office, objection, uphold=False, reason="无误", now=NOW)
    assert not objections.marks_for(enterprise_id).has(record)


# Credit repair ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("decided_at", "repaired_day"),
    [
        (NOW + dt.timedelta(hours=1), dt.date(2026, 11, 16)),  # 11:00 in Beijing
        # 17:00 UTC is 01:00 the next day in Beijing: the repair's day and the profile's
        # as-of day are both the Beijing day, so the repair counts at once.
        (NOW + dt.timedelta(hours=15), dt.date(2026, 11, 17)),
    ],
)
def test_approved_repair_stops_the_record_counting_and_being_shown(
    app_ctx: Flask, factory: Factory, decided_at: dt.datetime, repaired_day: dt.date
) -> None:
    user, office, enterprise_id = _setup(factory)
    assert profiles.latest_profiles([enterprise_id])[enterprise_id].public_credit_class == "B"
    penalty = db.session.scalar(
        sa.select(PublicCreditRecord).where(
            PublicCreditRecord.enterprise_id == enterprise_id, PublicCreditRecord.record_id == "P-1"
        )
    )
    assert [r.record_id for r in credit_repair.shown_to_banks(enterprise_id, NOW)] == ["P-1"]
    repair = credit_repair.apply(
        user, penalty.id, text="罚款已缴清", uploads=[Upload("凭证.pdf", PDF)], now=NOW
    )
    with pytest.raises(AccountError, match="already open"):
        credit_repair.apply(user, penalty.id, text="again", now=NOW)
    credit_repair.decide(office, repair, approve=True, now=decided_at)
    db.session.commit()

    assert repair.status is RepairStatus.APPROVED and repair.repaired_on == repaired_day
    versions = db.session.scalars(
        sa.select(PublicCreditRecord)
        .where(
            PublicCreditRecord.enterprise_id == enterprise_id,
            PublicCreditRecord.record_id == "P-1",
        )
        .order_by(PublicCreditRecord.version)
    ).all()  # fmt: skip
    assert [(v.version, v.repaired_on) for v in versions] == [(1, None), (2, repaired_day)]
    profile = profiles.latest_profiles([enterprise_id])[enterprise_id]
    assert profile.as_of == repaired_day
    assert profile.public_credit_class == "A" and profile.trigger == "credit_repair"
    assert any(r["code"] == "repaired" for r in profile.public_credit_reasons)
    assert credit_repair.shown_to_banks(enterprise_id, decided_at) == []
    with pytest.raises(AccountError, match="no longer counts"):
        credit_repair.apply(user, versions[1].id, text="again", now=decided_at)


def test_rejected_repair_needs_a_reason_and_changes_nothing(
    app_ctx: Flask, factory: Factory
) -> None:
    user, office, _enterprise_id = _setup(factory)
    penalty = db.session.scalar(
        sa.select(PublicCreditRecord).where(PublicCreditRecord.record_id == "P-1")
    )
    repair = credit_repair.apply(user, penalty.id, text="已整改", now=NOW)
    with pytest.raises(AccountError) as refused:
        credit_repair.decide(office, repair, approve=False, now=NOW)
    assert refused.value.field == "reason"
    credit_repair.decide(office, repair, approve=False, reason="整改材料不全", now=NOW)
    assert repair.status is RepairStatus.REJECTED
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PublicCreditRecord)) == 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CreditProfile)) == 1


def test_seed_demo_objections_adds_every_state_once(app_ctx: Flask, factory: Factory) -> None:
    from app.services import accounts
    from app.services.demo import DEMO_LOGINS, OFFICE_NAME
    from models import Organization

    accounts_made = [factory.enterprise() for _ in range(6)]
    office_org = accounts.create_organization(None, OrgKind.OFFICE, OFFICE_NAME)
    accounts.create_user(
        None, office_org, DEMO_LOGINS["office"], "办", Role.ADMIN, "correct horse battery"
    )
    for account in accounts_made:
        grant_collection(account.user_id, ("tax",))
        add_records(enterprise_by_user(account.user_id))
    db.session.commit()
    assert objections.seed_demo_objections() == 6
    statuses = db.session.scalars(sa.select(Objection.status)).all()
    assert set(statuses) == set(ObjectionStatus)
    assert credit_repair.queue()
    assert objections.seed_demo_objections() == 0
    assert db.session.get(Organization, office_org.id) is not None
