"""The sandbox connector, the answer validator and choosing a connector from configuration."""

from __future__ import annotations

import pytest

from app.connectors import (
    Connector,
    ConnectorError,
    FailureReason,
    HttpConnector,
    SandboxConnector,
    columns_for,
    config_from_env,
    connector_for,
    validate_tables,
)
from ml import schema
from ml.uscc import is_valid

MONTHS = [f"{y}-{m:02d}" for y in (2024, 2025) for m in range(1, 13)]


@pytest.mark.parametrize("scope", schema.SCOPES)
def test_sandbox_serves_every_scope_in_the_canonical_columns(scope):
    uscc = "91350102MA2XYZ1234"
    tables = SandboxConnector().fetch(uscc, scope, MONTHS)
    assert set(tables) == set(schema.SCOPE_TABLES[scope])
    main = tables[schema.SCOPE_TABLES[scope][0]]
    assert len(main) >= 12, "two years of records, less the simulator's gaps"
    for table, rows in tables.items():
        for row in rows:
            assert tuple(row) == columns_for(table)
            assert row["uscc"] == uscc
            assert all(isinstance(value, str) for value in row.values())
    # the answer passes the same validation a real provider's must
    assert validate_tables({"tables": tables}, uscc, scope, MONTHS) == tables


def test_sandbox_is_deterministic_per_uscc_and_months():
    sandbox = SandboxConnector()
    first = sandbox.fetch("91350102MA2XYZ1234", "utilities", MONTHS)
    assert SandboxConnector().fetch("91350102MA2XYZ1234", "utilities", MONTHS) == first
    other = sandbox.fetch("911101080000000007", "utilities", MONTHS)
    strip = [{k: v for k, v in row.items() if k != "uscc"} for row in other["utilities"]]
    assert strip != [{k: v for k, v in row.items() if k != "uscc"} for row in first["utilities"]]


def test_sandbox_serves_only_the_months_asked_for_and_the_latest_version():
    months = ["2025-03", "2025-04", "2025-05"]
    tables = SandboxConnector().fetch("91350102MA2XYZ1234", "tax", months)
    assert {row["period"] for row in tables["tax"]} <= set(months)
    keys = [(row["period"], row["tax_type"]) for row in tables["tax"]]
    assert len(keys) == len(set(keys)), "one row per record: no resends, no old versions"
    assert {row["year"] for row in tables["tax_credit_rating"]} <= {"2025"}
    for row in tables["tax"]:
        assert float(row["amount_paid"]) >= 0
        assert row["late_filing"] in ("0", "1")


def test_sandbox_money_has_two_decimals():
    rows = SandboxConnector().fetch("91350102MA2XYZ1234", "provident_fund", MONTHS)
    for row in rows["provident_fund"]:
        assert row["amount"].count(".") == 1 and len(row["amount"].split(".")[1]) == 2


def test_requests_no_provider_could_answer_are_programming_errors():
    sandbox = SandboxConnector()
    with pytest.raises(ValueError, match="unknown scope"):
        sandbox.fetch("91350102MA2XYZ1234", "public_credit", MONTHS)
    with pytest.raises(ValueError, match="YYYY-MM"):
        sandbox.fetch("91350102MA2XYZ1234", "tax", ["2025-13"])
    with pytest.raises(ValueError, match="empty"):
        sandbox.fetch("91350102MA2XYZ1234", "tax", [])


def test_validator_rejects_a_rating_year_not_asked_for():
    uscc = "91350102MA2XYZ1234"
    payload = {
        "tables": {"tax": [], "tax_credit_rating": [{"uscc": uscc, "year": "2019", "rating": "A"}]}
    }
    with pytest.raises(ConnectorError) as caught:
        validate_tables(payload, uscc, "tax", ["2025-01"])
    assert caught.value.reason is FailureReason.MALFORMED
    assert "year '2019'" in caught.value.detail


def test_numbers_in_an_answer_become_text():
    uscc = "91350102MA2XYZ1234"
    row = {
        "uscc": uscc,
        "month": "2025-01",
        "contributing_employees": 7,
        "amount": 1234.5,
        "arrears": None,
    }
    tables = validate_tables(
        {"tables": {"provident_fund": [row]}}, uscc, "provident_fund", ["2025-01"]
    )
    assert tables["provident_fund"][0] == {
        "uscc": uscc,
        "month": "2025-01",
        "contributing_employees": "7",
        "amount": "1234.5",
        "arrears": "",
    }


def test_connector_for_reads_the_configuration():
    assert isinstance(connector_for({}), SandboxConnector)
    http = connector_for(
        {
            "CONNECTOR": "http",
            "PROVIDER_ENDPOINTS": {
                "tax": {
                    "name": "税务局",
                    "base_url": "https://tax.example",
                    "client_id": "a",
                    "client_secret": "b",
                },
            },
            "CONNECTOR_TIMEOUT": 3,
            "CONNECTOR_RETRIES": 1,
        }
    )
    assert isinstance(http, HttpConnector)
    assert http.provider_name("tax") == "税务局"
    assert http.policy.timeout == 3 and http.policy.retries == 1
    assert http.endpoints["tax"].resolved_token_url == "https://tax.example/oauth/token"
    custom = SandboxConnector()
    assert connector_for({"CONNECTOR": custom}) is custom
    assert isinstance(custom, Connector)
    with pytest.raises(ValueError, match="expected 'sandbox' or 'http'"):
        connector_for({"CONNECTOR": "ftp"})
    with pytest.raises(ValueError, match="needs base_url"):
        connector_for({"CONNECTOR": "http", "PROVIDER_ENDPOINTS": {"tax": {"name": "x"}}})


def test_config_from_env():
    env = {
        "XINYIDAI_CONNECTOR": "http",
        "XINYIDAI_PROVIDER_ENDPOINTS": '{"tax": {"base_url": "https://t", "client_id": "a", '
        '"client_secret": "b"}}',
        "XINYIDAI_CONNECTOR_TIMEOUT": "2.5",
        "XINYIDAI_CONNECTOR_BREAKER_THRESHOLD": "4",
    }
    config = config_from_env(env)
    assert config["CONNECTOR"] == "http"
    assert config["PROVIDER_ENDPOINTS"]["tax"]["base_url"] == "https://t"
    assert config["CONNECTOR_TIMEOUT"] == 2.5 and config["CONNECTOR_BREAKER_THRESHOLD"] == 4
    assert config_from_env({}) == {}
    with pytest.raises(ValueError, match="XINYIDAI_CONNECTOR_RETRIES"):
        config_from_env({"XINYIDAI_CONNECTOR_RETRIES": "many"})
    with pytest.raises(ValueError, match="not valid JSON"):
        config_from_env({"XINYIDAI_PROVIDER_ENDPOINTS": "{"})


def test_demo_usccs_are_valid_for_the_sandbox():
    from app.services.demo import demo_uscc

    uscc = demo_uscc(1)
    assert is_valid(uscc)
    assert SandboxConnector().fetch(uscc, "social_insurance", MONTHS)["social_insurance"]


def test_the_environment_configures_the_connector(make_app, monkeypatch):
    monkeypatch.setenv("XINYIDAI_CONNECTOR", "http")
    monkeypatch.setenv("XINYIDAI_CONNECTOR_RETRIES", "1")
    configured = make_app()
    assert configured.config["CONNECTOR"] == "http"
    assert configured.config["CONNECTOR_RETRIES"] == 1
    explicit = make_app(CONNECTOR="sandbox")
    assert explicit.config["CONNECTOR"] == "sandbox", "explicit configuration wins"
