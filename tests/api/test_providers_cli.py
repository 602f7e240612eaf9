"""``flask providers ...``: registering, listing, disabling provider clients."""

from __future__ import annotations

import base64
import re

import sqlalchemy as sa

from app.extensions import db
from models import AuditEvent
from models.provider import ProviderClient


def created(output: str) -> tuple[str, str]:
    client_id = re.search(r"client_id\s+(\S+)", output)
    secret = re.search(r"client_secret\s+(\S+)", output)
    assert client_id and secret, output
    return client_id.group(1), secret.group(1)


def test_create_prints_credentials_once_that_work(app, runner, client):
    result = runner.invoke(args=["providers", "create", "--name", "税务局", "--source", "tax"])
    assert result.exit_code == 0, result.output
    assert "scope ingest:tax" in result.output
    assert "cannot be shown again" in result.output
    client_id, secret = created(result.output)
    with app.app_context():
        stored = db.session.scalar(sa.select(ProviderClient))
        assert stored is not None and stored.client_id == client_id
        assert secret not in stored.client_secret_hash
        event = db.session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "provider.create")
        )
        assert event is not None and event.object_id == client_id
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {raw}"},
    )
    assert response.status_code == 200

    listed = runner.invoke(args=["providers", "list"])
    assert client_id in listed.output and "active" in listed.output and "税务局" in listed.output


def test_create_refuses_duplicates_and_unknown_sources(runner):
    first = runner.invoke(args=["providers", "create", "--name", "水务", "--source", "utilities"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(args=["providers", "create", "--name", "水务", "--source", "utilities"])
    assert again.exit_code != 0
    assert "已有同名的数据提供方" in again.output  # the platform speaks Chinese by default
    unknown = runner.invoke(args=["providers", "create", "--name", "银行", "--source", "loans"])
    assert unknown.exit_code != 0
    assert "loans" in unknown.output


def test_disable_and_enable(app, runner):
    result = runner.invoke(
        args=["providers", "create", "--name", "公积金中心", "--source", "provident_fund"]
    )
    client_id, _ = created(result.output)
    disabled = runner.invoke(args=["providers", "disable", client_id])
    assert disabled.exit_code == 0 and "no longer work" in disabled.output
    with app.app_context():
        assert db.session.scalar(sa.select(ProviderClient.active)) is False
    assert "disabled" in runner.invoke(args=["providers", "list"]).output
    assert runner.invoke(args=["providers", "enable", client_id]).exit_code == 0
    with app.app_context():
        assert db.session.scalar(sa.select(ProviderClient.active)) is True
    missing = runner.invoke(args=["providers", "disable", "nobody"])
    assert missing.exit_code != 0 and "No provider client" in missing.output


def test_bank_client_cli_issues_credentials_with_the_scopes_asked(app, runner, client, factory):
    from models import OrgKind

    factory.organization(OrgKind.BANK, "闽江银行")
    refused = runner.invoke(
        args=[
            "bank-clients",
            "create",
            "--bank",
            "不存在银行",
            "--name",
            "x",
            "--scope",
            "pool:read",
        ]
    )
    assert refused.exit_code != 0 and "No bank named" in refused.output
    result = runner.invoke(
        args=["bank-clients", "create", "--bank", "闽江银行", "--name", "信贷系统",
              "--scope", "profiles:read", "--scope", "applications:write"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    client_id, secret = created(result.output)
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    token = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "scope": "profiles:read"},
        headers={"Authorization": f"Basic {raw}"},
    )
    assert token.status_code == 200, token.get_data(as_text=True)
    escalated = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "scope": "loans:write"},
        headers={"Authorization": f"Basic {raw}"},
    )
    assert escalated.status_code == 400
    assert escalated.get_json()["error"] == "invalid_scope"
