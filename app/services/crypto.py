"""Field-level encryption at rest: AES-256-GCM with a key id, and key rotation.

Keys come from ``FIELD_KEYS`` = ``"kid:base64key,kid2:base64key"``; the first is the
current key (new values are encrypted with it), the others only decrypt. In development and
testing, a key is generated once into the instance folder (``field_keys``), like
``SECRET_KEY``; production refuses to start without ``FIELD_KEYS``.

A stored value reads ``v1:<kid>:<base64(nonce ‖ ciphertext ‖ tag)>``. The column's name is the
associated data, so a ciphertext copied into another column (or another table) does not
decrypt. ``flask keys rotate`` re-encrypts every value not under the current key, in batches,
and can be run again at any time; afterwards the old key can be removed from ``FIELD_KEYS``.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_app_context

from models.encryption import (
    PREFIX,
    EncryptedText,
    FieldKeyError,
    Keyring,
    keyring,
    parse_keys,
)

__all__ = [
    "EncryptedText",
    "FieldKeyError",
    "Keyring",
    "dev_keys",
    "key_ids_in_use",
    "keyring",
    "mask",
    "new_key_spec",
    "parse_keys",
    "rotate",
]


def new_key_spec(kid: str | None = None) -> str:
    """One new ``kid:base64key`` entry; :class:`FieldKeyError` for a ``kid`` that
    ``FIELD_KEYS`` would refuse (what every command printing a key relies on)."""
    kid = kid or "k" + secrets.token_hex(3)
    spec = f"{kid}:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    parse_keys(spec)
    return spec


def dev_keys(instance_path: Path) -> str:
    """Development and testing: a key generated once into ``instance/field_keys`` (0600)."""
    path = instance_path / "field_keys"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    spec = new_key_spec("dev1")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(spec)
    return spec


def encrypted_columns() -> Iterator[tuple[sa.Table, sa.Column[Any]]]:
    from models import Base

    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText):
                yield table, column


@dataclass
class RotationResult:
    column: str
    rewritten: int


def rotate(batch_size: int = 500) -> list[RotationResult]:
    """Re-encrypt every encrypted value not under the current key, ``batch_size`` rows at a
    time, committing after each batch (for ``flask keys rotate`` only: an interrupted run
    keeps its finished batches, and the next run goes on from there).

    Idempotent: values already under the current key are not touched, so running it again
    rewrites nothing. Raises :class:`FieldKeyError` when a value's key is no longer configured.
    """
    from models.base import db

    ring = keyring()
    results = []
    for table, column in encrypted_columns():
        pk = next(iter(table.primary_key.columns))
        raw = sa.type_coerce(column, sa.Text)
        stale = f"{PREFIX}:{ring.current}:"  # values not starting so are stale
        done = 0
        last_id: Any = None
        while True:
            stmt = (
                sa.select(pk, column)
                .where(raw.is_not(None), sa.func.substr(raw, 1, len(stale)) != stale)
                .order_by(pk)
                .limit(batch_size)
            )
            if last_id is not None:
                stmt = stmt.where(pk > last_id)
            rows = db.session.execute(stmt).all()
            if not rows:
                break
            for row_id, value in rows:
                update = sa.update(table).where(pk == row_id).values({column.name: value})
                db.session.execute(update)
            last_id = rows[-1][0]
            done += len(rows)
            db.session.commit()
        results.append(RotationResult(f"{table.name}.{column.name}", done))
    return results


def key_ids_in_use() -> dict[str, int]:
    """How many stored values each key id encrypts (to know when an old key may go)."""
    from models.base import db

    counts: dict[str, int] = {}
    for _table, column in encrypted_columns():
        raw = sa.type_coerce(column, sa.Text)
        for (value,) in db.session.execute(sa.select(raw).where(raw.is_not(None))):
            kid = str(value).split(":", 2)[1]
            counts[kid] = counts.get(kid, 0) + 1
    return counts


# Masked display ------------------------------------------------------------------------


def mask(value: str | None, keep_start: int = 3, keep_end: int = 4) -> str:
    """``110101199001011234`` → ``110***********1234``; ``13812345678`` → ``138****5678``."""
    if not value:
        return ""
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


def configured() -> bool:
    return has_app_context() and bool(current_app.config.get("FIELD_KEYS"))


def main(argv: list[str] | None = None) -> None:
    """``python -m app.services.crypto [--kid ID]``: print a new ``FIELD_KEYS`` entry without
    starting the app — a production app refuses to start before ``FIELD_KEYS`` has its first
    key, so ``flask keys new`` serves rotations, this the first key."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m app.services.crypto", description=main.__doc__)
    parser.add_argument("--kid", help="key id (letters, digits, - and _); random if omitted")
    try:
        spec = new_key_spec(parser.parse_args(argv).kid)
    except FieldKeyError as exc:
        parser.error(str(exc))
    print(spec)  # the command's output


if __name__ == "__main__":
    main()
