"""RFC 9457 problem details for the API: ``type``, ``title``, ``status``, ``detail`` and,
for invalid input, ``errors`` — one entry per offending field (``field``, ``message`` and,
for a row of a batch, ``line``)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

PROBLEM_BASE = "urn:xinyidai:problem:"


class ApiProblem(Exception):
    """Raised by API views; rendered as ``application/problem+json``."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: Any,
        detail: Any,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {slug}: {detail}")
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": str(self.title),
            "status": self.status,
            "detail": str(self.detail),
        }
        if self.errors is not None:
            body["errors"] = self.errors
        response = jsonify(body)
        response.status_code = self.status
        response.mimetype = "application/problem+json"
        response.headers.update(self.headers)
        return response
