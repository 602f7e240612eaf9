"""The office's audit trail viewer: filters, pages, chain verification."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.services import audit
from models import AuditEvent, Enterprise, OrgKind, Role, User, db
from tests.conftest import csrf_token

BEIJING_NOON = dt.timezone(dt.timedelta(hours=8))


def _seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', html)]


def _seed(app: Flask, factory) -> dict[str, object]:
    sme = factory.enterprise()
    banker = factory.user(OrgKind.BANK, Role.OFFICER)
    with app.app_context():
        enterprise = db.session.scalar(
            sa.select(Enterprise).where(Enterprise.organization_id == sme.organization_id)
        )
        bank_user = db.session.get(User, banker.user_id)
        day = lambda d: dt.datetime(2026, 3, d, 12, 0, tzinfo=BEIJING_NOON)  # noqa: E731
        audit.record("profile.view", actor=bank_user, enterprise_id=enterprise.id, now=day(1))
        audit.record("authorization.grant", actor=None, enterprise_id=enterprise.id, now=day(2))
        audit.record("model.approve", actor=None, object_type="model_version", object_id=1,
                     now=day(3))  # fmt: skip
        # 23:30 on 3 March in Beijing is 15:30 UTC the same day; 00:30 on 4 March is 3 March UTC
        audit.record("model.retire", actor=None,
                     now=dt.datetime(2026, 3, 4, 0, 30, tzinfo=BEIJING_NOON))  # fmt: skip
        db.session.commit()
        return {"uscc": enterprise.uscc, "name": enterprise.name, "banker": banker.email}


def test_filters(client: FlaskClient, app: Flask, factory, login_as) -> None:
    seeded = _seed(app, factory)
    login_as(OrgKind.OFFICE, Role.VIEWER)
    everything = _seqs(client.get("/office/audit").get_data(as_text=True))
    assert everything == sorted(everything, reverse=True) and len(everything) == 4

    def seqs(query: str) -> list[int]:
        response = client.get("/office/audit?" + query)
        assert response.status_code == 200
        return _seqs(response.get_data(as_text=True))

    assert seqs(f"enterprise={seeded['uscc']}") == [2, 1]
    assert seqs(f"enterprise={str(seeded['name'])[:4]}") == [2, 1]
    assert seqs(f"actor={seeded['banker']}") == [1]
    assert seqs("action=profile.view") == [1]
    assert seqs("action=model.") == [4, 3]
    assert seqs("date_from=2026-03-02&date_to=2026-03-03") == [3, 2]
    assert seqs("date_from=2026-03-04") == [4]  # Beijing date, not the UTC one
    assert seqs("action=model.&date_to=2026-03-03") == [3]
    assert seqs("actor=nobody-at-all") == []
    bad = client.get("/office/audit?date_from=not-a-date")
    assert bad.status_code == 422


def test_pages(client: FlaskClient, app: Flask, login_as) -> None:
    with app.app_context():
        for i in range(55):
            audit.record("test.event", actor=None, object_id=i)
        db.session.commit()
    login_as(OrgKind.OFFICE, Role.VIEWER)
    first = client.get("/office/audit?action=test.event").get_data(as_text=True)
    assert "55 events" in first and "Page 1 of 2" in first
    assert _seqs(first) == list(range(55, 5, -1))
    assert "/office/audit?page=2&amp;action=test.event" in first
    second = client.get("/office/audit?action=test.event&page=2").get_data(as_text=True)
    assert _seqs(second) == [5, 4, 3, 2, 1]


def test_verify_reports_ok_then_the_tampered_row(client: FlaskClient, app: Flask, login_as) -> None:
    with app.app_context():
        for i in range(5):
            audit.record("test.event", actor=None, object_id=i)
        db.session.commit()
    login_as(OrgKind.OFFICE, Role.VIEWER)
    token = csrf_token(client, "/office/audit")
    ok = client.post("/office/audit/verify", data={"csrf_token": token},
                     headers={"HX-Request": "true"})  # fmt: skip
    html = ok.get_data(as_text=True)
    assert 'data-ok="yes"' in html and "The chain is intact: 5 events checked." in html
    with app.app_context():
        db.session.execute(
            sa.update(AuditEvent).where(AuditEvent.seq == 3).values(object_id="forged")
        )
        db.session.commit()
    broken = client.post("/office/audit/verify", data={"csrf_token": token})
    html = broken.get_data(as_text=True)
    assert "<html" in html  # without htmx, a whole page
    assert 'data-ok="no"' in html
    assert "The chain is broken at event 3 (after 2 intact events)" in html
    assert "edited" in html


def test_only_the_office_reads_the_trail(client: FlaskClient, login_as) -> None:
    login_as(OrgKind.BANK)
    assert client.get("/office/audit").status_code == 403


def test_verify_shows_its_progress_until_the_report(
    client: FlaskClient, app: Flask, login_as, monkeypatch
) -> None:
    from app import jobs

    with app.app_context():
        for i in range(3):
            audit.record("test.event", actor=None, object_id=i)
        db.session.commit()
    login_as(OrgKind.OFFICE, Role.VIEWER)
    monkeypatch.setattr(jobs.EagerRunner, "submit", lambda self, app, job_id: None)  # a busy queue
    token = csrf_token(client, "/office/audit")
    started = client.post("/office/audit/verify", data={"csrf_token": token},
                          headers={"HX-Request": "true"}).get_data(as_text=True)  # fmt: skip
    assert 'data-status="queued"' in started and "data-ok" not in started
    poll = re.search(r'hx-get="(/office/audit/verify/\d+)"', started)
    assert poll and 'hx-trigger="every 1s"' in started
    waiting = client.get(poll.group(1), headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-status="queued"' in waiting
    monkeypatch.undo()
    job_id = int(poll.group(1).rsplit("/", 1)[1])
    jobs.run(app, job_id)  # a worker takes it
    done = client.get(poll.group(1), headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-ok="yes"' in done and "hx-get" not in done
    assert "The chain is intact: 3 events checked." in done
    assert client.get("/office/audit/verify/999999").status_code == 404


def test_the_action_choices_and_a_capped_count(app: Flask, factory, monkeypatch) -> None:
    from app.services import audit_viewer

    office_id = factory.user(OrgKind.OFFICE).user_id
    with app.app_context():
        for action in ("test.b", "test.a", "test.c", "test.a", "test.b"):
            audit.record(action, actor=None)
        db.session.commit()
        assert [a for a in audit_viewer.actions() if a.startswith("test.")] == [
            "test.a",
            "test.b",
            "test.c",
        ]
        office = db.session.get(User, office_id)
        monkeypatch.setattr(audit_viewer, "COUNT_CAP", 3)
        flt = audit_viewer.AuditFilter(action="test.")
        first = audit_viewer.search(office, flt, 1, per_page=2)
        assert (first.total, first.pages, first.capped) == (3, 2, True)
        assert [r.event.action for r in first.rows] == ["test.b", "test.a"]  # newest first
        narrow = audit_viewer.search(office, audit_viewer.AuditFilter(action="test.c"), 1, 2)
        assert (narrow.total, narrow.pages, narrow.capped) == (1, 1, False)
