"""The browser tests' live server leaves no file open when the browser resets a connection."""

from __future__ import annotations

import gc
import socket
import struct
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import pytest


def test_a_reset_connection_leaves_no_static_file_open(
    live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chromium cancels script loads when a test navigates on; each cancel is a reset
    # connection. Werkzeug's server then skips closing the response, and the open file's
    # ResourceWarning failed a journey test at random in CI.
    unraisable: list[str] = []

    def hook(info: Any) -> None:
        unraisable.append(repr(info.exc_value))

    monkeypatch.setattr(sys, "unraisablehook", hook)
    address = urlsplit(live_server)
    for _ in range(200):
        with socket.create_connection((address.hostname, address.port)) as conn:
            conn.sendall(b"GET /static/vendor/htmx.min.js HTTP/1.1\r\nHost: test\r\n\r\n")
            assert conn.recv(12) == b"HTTP/1.1 200"
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(1)  # the server's threads finish their reset requests
    gc.collect()
    assert [u for u in unraisable if "unclosed file" in u] == []
