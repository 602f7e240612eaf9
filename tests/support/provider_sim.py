"""A data provider simulator served over HTTP on 127.0.0.1 (a random port, in a thread).

It speaks the protocol :class:`app.connectors.HttpConnector` expects — a client-credentials
token endpoint and ``GET /records/<scope>`` — serving the sandbox's records, and can be told
to misbehave::

    with ProviderSimulator() as sim:
        sim.fail_next(2)            # the next two record requests answer 503
        sim.delay = 0.5             # answers take half a second
        sim.malformed = "garbage"   # or "missing_column", "wrong_uscc", "not_json", "extra_table"
        connector = HttpConnector({"tax": sim.endpoint("tax")}, policy)
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from app.connectors import ProviderEndpoint, SandboxConnector

CLIENT_ID = "platform"
CLIENT_SECRET = "sim-secret-" + "x" * 20


class ProviderSimulator:
    def __init__(self, token_lifetime: int = 300) -> None:
        self.token_lifetime = token_lifetime
        self.delay = 0.0
        self.malformed: str | None = None
        self.status_override: int | None = None  # every record request answers this
        self.on_request: Callable[[str], None] | None = None  # called with the scope
        self._failures_left = 0
        self._failure_status = 503
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self.record_requests = 0
        self.token_requests = 0
        self._sandbox = SandboxConnector()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # control ---------------------------------------------------------------------------

    def fail_next(self, times: int, status: int = 503) -> None:
        with self._lock:
            self._failures_left = times
            self._failure_status = status

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the simulator first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def endpoint(self, scope: str, secret: str = CLIENT_SECRET) -> ProviderEndpoint:
        return ProviderEndpoint(
            name=f"sim-{scope}", base_url=self.base_url, client_id=CLIENT_ID, client_secret=secret
        )

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> ProviderSimulator:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ProviderSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # the provider ----------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/oauth/token" and request.method == "POST":
            response = self._token(request)
        elif request.path.startswith("/records/") and request.method == "GET":
            response = self._records(request, request.path.removeprefix("/records/"))
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    def _token(self, request: Request) -> Response:
        with self._lock:
            self.token_requests += 1
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return _json({"error": "invalid_client"}, 401)
        if request.form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return _json(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}
        )

    def _records(self, request: Request, scope: str) -> Response:
        with self._lock:
            self.record_requests += 1
            failing = self._failures_left > 0
            if failing:
                self._failures_left -= 1
            valid = request.headers.get("Authorization", "").removeprefix("Bearer ") in (
                self._tokens
            )
        if self.on_request is not None:
            self.on_request(scope)
        if self.delay:
            time.sleep(self.delay)
        if not valid:
            return _json({"error": "invalid_token"}, 401)
        if failing:
            return _json({"error": "temporarily unavailable"}, self._failure_status)
        if self.status_override is not None:
            return _json({"error": "refused"}, self.status_override)
        uscc = request.args.get("uscc", "")
        months = [m for m in request.args.get("months", "").split(",") if m]
        tables: dict[str, Any] = dict(self._sandbox.fetch(uscc, scope, months))
        return self._maybe_break(tables, scope)

    def _maybe_break(self, tables: dict[str, Any], scope: str) -> Response:
        kind = self.malformed
        if kind is None:
            return _json({"tables": tables})
        if kind == "not_json":
            return Response("<html>maintenance</html>", content_type="text/html")
        if kind == "garbage":
            return _json({"tables": dict.fromkeys(tables, "garbage")})
        first = next(name for name in tables if tables[name])
        rows = [dict(row) for row in tables[first]]
        if kind == "missing_column":
            rows[-1].pop(next(iter(k for k in rows[-1] if k != "uscc")))
        elif kind == "wrong_uscc":
            rows[-1]["uscc"] = "91350100000000000X"
        elif kind == "nested_value":
            rows[-1][next(k for k in rows[-1] if k != "uscc")] = {"value": 1}
        elif kind == "extra_table":
            tables = {**tables, "public_credit": []}
        else:
            raise ValueError(f"unknown malformation {kind!r}")
        return _json({"tables": {**tables, first: rows}})


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
