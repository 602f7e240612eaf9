"""Field-level encryption: round trip, key rotation, a canary never in a database dump."""

from __future__ import annotations

import os
import subprocess

import pytest
import sqlalchemy as sa
from flask import current_app

from app.config import ConfigError
from app.extensions import db
from app.services import crypto
from app.services.crypto import FieldKeyError, mask, new_key_spec, parse_keys
from models import Enterprise, User

CANARY_ID = "11010519491231002X"
CANARY_PHONE = "13912340987"


def _enterprise(factory) -> int:
    account = factory.enterprise()
    enterprise = db.session.scalar(
        sa.select(Enterprise).where(Enterprise.organization_id == account.organization_id)
    )
    return enterprise.id


def _raw(enterprise_id: int) -> str:
    return db.session.execute(
        sa.text("SELECT legal_rep_id_number FROM enterprise WHERE id = :i"), {"i": enterprise_id}
    ).scalar_one()


def test_round_trip_and_a_fresh_nonce_each_time(app_ctx, factory):
    first, second = _enterprise(factory), _enterprise(factory)
    for eid in (first, second):
        db.session.get(Enterprise, eid).legal_rep_id_number = CANARY_ID
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Enterprise, first).legal_rep_id_number == CANARY_ID
    raw_a, raw_b = _raw(first), _raw(second)
    kid = crypto.keyring().current
    assert raw_a.startswith(f"v1:{kid}:") and raw_b.startswith(f"v1:{kid}:")
    assert raw_a != raw_b  # same value, different ciphertexts


def test_a_ciphertext_moved_to_another_column_does_not_decrypt(app_ctx, factory):
    eid = _enterprise(factory)
    db.session.get(Enterprise, eid).legal_rep_id_number = CANARY_ID
    db.session.commit()
    stolen = _raw(eid)
    db.session.execute(
        sa.text("UPDATE enterprise SET legal_rep_phone = :v WHERE id = :i"), {"v": stolen, "i": eid}
    )
    db.session.commit()
    db.session.expire_all()
    with pytest.raises(FieldKeyError, match="does not authenticate"):
        db.session.get(Enterprise, eid).legal_rep_phone  # noqa: B018


def test_rotation_re_encrypts_old_rows_which_stay_readable_and_the_old_key_can_go(app_ctx, factory):
    old_spec = current_app.config["FIELD_KEYS"]
    old_kid = parse_keys(old_spec).current
    ids = [_enterprise(factory) for _ in range(3)]
    for eid in ids:
        db.session.get(Enterprise, eid).legal_rep_phone = CANARY_PHONE
    db.session.commit()
    new_spec = new_key_spec("k2026")
    try:
        current_app.config["FIELD_KEYS"] = f"{new_spec},{old_spec}"
        db.session.expire_all()
        # Before rotation: old rows are still read with the old key.
        assert db.session.get(Enterprise, ids[0]).legal_rep_phone == CANARY_PHONE
        assert crypto.key_ids_in_use() == {old_kid: 3}
        results = {r.column: r.rewritten for r in crypto.rotate(batch_size=2)}
        assert results["enterprise.legal_rep_phone"] == 3
        assert crypto.key_ids_in_use() == {"k2026": 3}
        again = {r.column: r.rewritten for r in crypto.rotate(batch_size=2)}
        assert set(again.values()) == {0}  # idempotent
        # The old key removed: everything still reads.
        current_app.config["FIELD_KEYS"] = new_spec
        db.session.expire_all()
        for eid in ids:
            assert db.session.get(Enterprise, eid).legal_rep_phone == CANARY_PHONE
    finally:
        current_app.config["FIELD_KEYS"] = old_spec


def test_a_removed_key_that_still_encrypts_rows_is_named(app_ctx, factory):
    eid = _enterprise(factory)
    db.session.get(Enterprise, eid).legal_rep_phone = CANARY_PHONE
    db.session.commit()
    old_spec = current_app.config["FIELD_KEYS"]
    try:
        current_app.config["FIELD_KEYS"] = new_key_spec("other")
        db.session.expire_all()
        with pytest.raises(FieldKeyError, match="no longer has"):
            db.session.get(Enterprise, eid).legal_rep_phone  # noqa: B018
    finally:
        current_app.config["FIELD_KEYS"] = old_spec


def test_keys_rotate_command(app, runner, factory):
    with app.app_context():
        eid = _enterprise(factory)
        db.session.get(Enterprise, eid).legal_rep_phone = CANARY_PHONE
        db.session.commit()
    old_spec = app.config["FIELD_KEYS"]
    try:
        app.config["FIELD_KEYS"] = f"{new_key_spec('cli1')},{old_spec}"
        result = runner.invoke(args=["keys", "rotate"])
        assert result.exit_code == 0, result.output
        assert "enterprise.legal_rep_phone: 1 re-encrypted" in result.output
        status = runner.invoke(args=["keys", "status"])
        assert "cli1 (current): 1 values" in status.output
        assert f"{parse_keys(old_spec).current}: 0 values" in status.output
    finally:
        app.config["FIELD_KEYS"] = old_spec


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("", "no key"),
        ("k1:notbase64!!", "not base64"),
        ("k1:" + "QUFB", "32 bytes"),
        ("bad id:" + new_key_spec().split(":")[1], "not a key id"),
    ],
)
def test_malformed_keys_are_refused(spec, problem):
    with pytest.raises(FieldKeyError, match=problem):
        parse_keys(spec)


def test_production_refuses_to_start_without_field_keys(monkeypatch, tmp_path):
    from app import create_app

    monkeypatch.delenv("FIELD_KEYS", raising=False)
    monkeypatch.setenv("XINYIDAI_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="FIELD_KEYS is not set"):
        create_app({"XINYIDAI_ENV": "production", "SECRET_KEY": "x" * 40})


def test_the_first_key_is_generated_without_starting_the_app(tmp_path):
    """What the refusal above tells the operator to run works where the app cannot start."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "FIELD_KEYS"}
    env.update(XINYIDAI_ENV="production", XINYIDAI_INSTANCE_PATH=str(tmp_path))
    command = [sys.executable, "-m", "app.services.crypto"]
    made = subprocess.run(
        [*command, "--kid", "k2027"], env=env, capture_output=True, text=True, check=True
    )
    ring = parse_keys(made.stdout.strip())
    assert ring.current == "k2027" and len(ring.keys["k2027"]) == 32
    refused = subprocess.run([*command, "--kid", "k 1"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "'k 1' is not a key id" in refused.stderr
    assert refused.stdout == ""


def test_flask_keys_new_prints_a_usable_key_and_refuses_a_bad_id(app):
    runner = app.test_cli_runner()
    made = runner.invoke(args=["keys", "new", "--kid", "k2028"])
    assert made.exit_code == 0 and parse_keys(made.output.strip()).current == "k2028"
    refused = runner.invoke(args=["keys", "new", "--kid", "k 1"])
    assert refused.exit_code == 2 and "'k 1' is not a key id" in refused.output
    assert "--kid" in refused.output


def test_masking():
    assert mask("110105194912310021") == "110***********0021"
    assert mask("13812345678") == "138****5678"
    assert mask(None) == "" and mask("123") == "***"


def _dump() -> str:
    """The whole database as text, as a backup would hold it."""
    engine = db.engine
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            return "\n".join(raw.driver_connection.iterdump())  # type: ignore[union-attr]
        finally:
            raw.close()
    url = engine.url
    schema = db.session.execute(sa.text("SELECT current_schema()")).scalar_one()
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = url.password
    return subprocess.run(
        [
            "pg_dump",
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            "-n",
            schema,
            url.database or "postgres",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout


def test_canary_values_never_appear_in_a_database_dump(app_ctx, factory):
    from app.services import two_factor

    eid = _enterprise(factory)
    enterprise = db.session.get(Enterprise, eid)
    enterprise.legal_rep_id_number = CANARY_ID
    enterprise.legal_rep_phone = CANARY_PHONE
    user = db.session.scalar(
        sa.select(User).where(User.organization_id == enterprise.organization_id)
    )
    secret = two_factor.begin_enrolment(user)
    db.session.commit()
    dump = _dump()
    assert "INSERT INTO" in dump or "COPY " in dump  # a real dump, with the rows in it
    assert enterprise.uscc in dump  # plain columns are there...
    for canary in (CANARY_ID, CANARY_PHONE, CANARY_PHONE[3:], secret):
        assert canary not in dump  # ...the encrypted ones are not
