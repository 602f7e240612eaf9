"""The office's model-governance pages: list, report, approve/retire, rescoring progress,
champion/challenger, drift."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.services import model_monitoring, model_registry
from models import CreditProfile, Job, ModelStatus, ModelVersion, OrgKind, Role, db
from tests.conftest import csrf_token
from tests.support.governance import (
    TrainedPair,
    trained_pair_fixture,  # noqa: F401  (fixture)
)


def _register(app: Flask, pair: TrainedPair, *, approve: bool = True) -> tuple[int, int, str]:
    with app.app_context():
        card = model_registry.register(pair.scorecard_dir, None)
        gbm = model_registry.register(pair.gbm_dir, None)
        if approve:
            model_registry.approve(card, None, recompute=False)
        holdout = model_monitoring.save_holdout(
            pair.X_holdout, pair.y_holdout, name="web hold-out", source="web"
        )
        db.session.commit()
        ids = (card.id, gbm.id, holdout.key)
        db.session.remove()
    return ids


def test_model_list_and_detail(client: FlaskClient, app: Flask, login_as, trained_pair) -> None:
    card_id, gbm_id, _ = _register(app, trained_pair)
    login_as(OrgKind.OFFICE, Role.VIEWER)
    html = client.get("/office/models").get_data(as_text=True)
    assert f'data-version="{card_id}" data-status="approved"' in html
    assert f'data-version="{gbm_id}" data-status="candidate"' in html
    assert "Approve</button>" not in html  # a viewer sees no buttons
    detail = client.get(f"/office/models/{card_id}")
    assert detail.status_code == 200
    page = detail.get_data(as_text=True)
    with app.app_context():
        version = db.session.get(ModelVersion, card_id)
        assert version is not None
        assert version.content_hash in page
        auc = version.validation_report["test"]["auc"]
    assert f"{auc:.4f}" in page
    report = client.get(f"/office/models/{card_id}/report.html")
    assert report.status_code == 200
    assert "Validation report — scorecard #" in report.get_data(as_text=True)
    assert client.get("/office/models/9999").status_code == 404


def test_only_office_admins_may_approve_or_retire(
    client: FlaskClient, app: Flask, login_as, trained_pair
) -> None:
    _, gbm_id, _ = _register(app, trained_pair)
    login_as(OrgKind.OFFICE, Role.OFFICER)
    token = csrf_token(client, "/office/models")
    for action in ("approve", "retire"):
        response = client.post(f"/office/models/{gbm_id}/{action}", data={"csrf_token": token})
        assert response.status_code == 403
    assert client.post("/office/models/rescore", data={"csrf_token": token}).status_code == 403
    with app.app_context():
        assert db.session.get(ModelVersion, gbm_id).status is ModelStatus.CANDIDATE


def test_bank_users_cannot_open_model_pages(client: FlaskClient, login_as) -> None:
    login_as(OrgKind.BANK)
    assert client.get("/office/models").status_code == 403


def test_admin_approves_a_challenger_and_every_profile_is_rescored(
    client: FlaskClient, app: Flask, factory, login_as, trained_pair
) -> None:
    card_id, gbm_id, _ = _register(app, trained_pair)
    for _ in range(3):
        factory.enterprise()
    login_as(OrgKind.OFFICE)
    token = csrf_token(client, "/office/models")
    # retire the serving scorecard: profiles lose their grade until another is approved
    response = client.post(f"/office/models/{card_id}/retire", data={"csrf_token": token})
    assert response.status_code == 302
    html = client.get("/office/models").get_data(as_text=True)
    assert "No model version is approved" in html
    response = client.post(f"/office/models/{gbm_id}/approve", data={"csrf_token": token})
    assert response.status_code == 302
    html = client.get("/office/models").get_data(as_text=True)
    assert "is approved; every profile is being rescored" in html
    assert f'data-version="{gbm_id}" data-status="approved"' in html
    assert f'data-version="{card_id}" data-status="retired"' in html
    assert 'data-testid="rescore-progress" data-status="succeeded"' in html
    with app.app_context():
        rescored = db.session.execute(
            sa.select(CreditProfile.enterprise_id, CreditProfile.model_version_id).where(
                CreditProfile.trigger == "rescore"
            )
        ).all()
    assert len(rescored) == 3 and {v for _, v in rescored} == {gbm_id}
    assert len({e for e, _ in rescored}) == 3
    # a retired version offers no buttons and cannot be approved again
    response = client.post(f"/office/models/{card_id}/approve", data={"csrf_token": token})
    assert response.status_code == 302
    assert "is retired" in client.get("/office/models").get_data(as_text=True)
    with app.app_context():
        assert db.session.get(ModelVersion, card_id).status is ModelStatus.RETIRED


def test_rescore_button_shows_htmx_progress(
    client: FlaskClient, app: Flask, factory, login_as, trained_pair
) -> None:
    _register(app, trained_pair)
    for _ in range(3):
        factory.enterprise()
    login_as(OrgKind.OFFICE)
    token = csrf_token(client, "/office/models")
    response = client.post(
        "/office/models/rescore", data={"csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html  # a partial
    assert 'data-status="succeeded"' in html and "3 of 3 enterprises" in html
    job_id = int(re.search(r'id="job-(\d+)"', html).group(1))
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert job is not None and job.steps_done == 3
        n = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(CreditProfile)
            .where(CreditProfile.trigger == "rescore")
        )
    assert n == 3
    poll = client.get(f"/office/models/jobs/{job_id}")
    assert poll.status_code == 200 and "3 of 3 enterprises" in poll.get_data(as_text=True)


def test_running_job_partial_polls(client: FlaskClient, app: Flask, login_as) -> None:
    with app.app_context():
        job = Job(kind="models.rescore", steps_total=10, steps_done=4, params={})
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    login_as(OrgKind.OFFICE, Role.VIEWER)
    html = client.get(f"/office/models/jobs/{job_id}").get_data(as_text=True)
    assert f'hx-get="/office/models/jobs/{job_id}"' in html and 'hx-trigger="every 1s"' in html
    assert "4 of 10 enterprises" in html


def test_compare_page_shows_both_versions_side_by_side(
    client: FlaskClient, app: Flask, login_as, trained_pair
) -> None:
    card_id, gbm_id, key = _register(app, trained_pair)
    login_as(OrgKind.OFFICE, Role.VIEWER)
    response = client.get(
        f"/office/models/compare?champion={card_id}&challenger={gbm_id}&holdout={key}"
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    with app.app_context():
        comparison = model_monitoring.compare(
            db.session.get(ModelVersion, card_id), db.session.get(ModelVersion, gbm_id), key
        )
    for name, a, b, _ in comparison.rows:
        row = re.search(rf'<tr data-metric="{name}">(.*?)</tr>', html, re.S).group(1)
        assert f'data-role="champion">{a:.4f}' in row
        assert f'data-role="challenger">{b:.4f}' in row
    assert html.count("<tr><td>") >= 10  # calibration deciles
    # defaults: the approved version against the candidate, on the newest hold-out
    assert client.get("/office/models/compare").status_code == 200
    bad = client.get(f"/office/models/compare?champion={card_id}&challenger={gbm_id}&holdout=zz")
    assert bad.status_code == 422 and "There is no hold-out set" in bad.get_data(as_text=True)


def test_drift_page_flags_shifted_features(
    client: FlaskClient, app: Flask, factory, login_as, trained_pair
) -> None:
    _register(app, trained_pair)
    factory.enterprise()
    factory.enterprise()
    with app.app_context():
        from app.services import profiles

        profiles.compute_all()
        db.session.commit()
    login_as(OrgKind.OFFICE, Role.VIEWER)
    html = client.get("/office/models/drift").get_data(as_text=True)
    assert "2 enterprises now against" in html
    assert 'data-shifted="yes"' in html and "features shifted (PSI above 0.25)" in html
