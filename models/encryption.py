"""The encrypted column type and its keyring (AES-256-GCM with a key id).

Lives with the models so they need nothing from the web layer; key management, rotation and
masking are in :mod:`app.services.crypto`. Keys are read from the Flask app's
``FIELD_KEYS`` ("kid:base64key,..."; the first is current).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app
from sqlalchemy.types import TypeDecorator

PREFIX = "v1"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


class FieldKeyError(RuntimeError):
    """``FIELD_KEYS`` is malformed, or a value was encrypted with a key no longer configured."""


@dataclass(frozen=True)
class Keyring:
    current: str
    keys: dict[str, bytes]

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.current]).encrypt(
            nonce, plaintext.encode(), context.encode()
        )
        return f"{PREFIX}:{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str, context: str) -> str:
        try:
            prefix, kid, body = stored.split(":", 2)
        except ValueError as exc:
            raise FieldKeyError("not an encrypted value") from exc
        if prefix != PREFIX:
            raise FieldKeyError(f"unknown format {prefix!r}")
        key = self.keys.get(kid)
        if key is None:
            raise FieldKeyError(f"value encrypted with key {kid!r}, which FIELD_KEYS no longer has")
        raw = base64.b64decode(body)
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as exc:
            raise FieldKeyError(f"value under key {kid!r} does not authenticate") from exc


def parse_keys(spec: str) -> Keyring:
    """``"kid:base64key,..."`` → :class:`Keyring`; keys must be 32 bytes (AES-256)."""
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kid, sep, b64 = part.partition(":")
        if not sep or not _KID.match(kid):
            raise FieldKeyError(f"FIELD_KEYS: {kid!r} is not a key id (letters, digits, - and _)")
        try:
            key = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FieldKeyError(f"FIELD_KEYS: key {kid!r} is not base64") from exc
        if len(key) != 32:
            raise FieldKeyError(f"FIELD_KEYS: key {kid!r} must be 32 bytes, not {len(key)}")
        if kid in keys:
            raise FieldKeyError(f"FIELD_KEYS: key id {kid!r} appears twice")
        keys[kid] = key
        order.append(kid)
    if not order:
        raise FieldKeyError("FIELD_KEYS has no key")
    return Keyring(order[0], keys)


_cache: dict[str, Keyring] = {}


def keyring() -> Keyring:
    spec = str(current_app.config["FIELD_KEYS"])
    ring = _cache.get(spec)
    if ring is None:
        ring = _cache[spec] = parse_keys(spec)
    return ring


class EncryptedText(TypeDecorator[str]):
    """A string column stored encrypted (see module doc); ``context`` is bound as AAD."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, context: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context = context

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return keyring().encrypt(value, self.context)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return keyring().decrypt(value, self.context)
