"""The API's operations declared next to their views, and the OpenAPI 3.1 document built
from those declarations.

:func:`operation` registers a view on the blueprint together with what the document says
about it — its scope, its query and body models (pydantic v2), its success model and its
problem responses — and does for every call what the document promises: credentials only
in the ``Authorization`` header, the token's scope, the query and body validated into the
models (field errors as RFC 9457 problems), ``Idempotency-Key`` on POST, the rate limits,
one commit, the response serialized from the success model.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import sqlalchemy as sa
from flask import Response, current_app, g, jsonify, request
from flask_babel import lazy_gettext as _l
from flask_limiter.util import get_remote_address
from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)
from pydantic import Field as Field
from pydantic.json_schema import models_json_schema

from app.api import bp
from app.api.errors import ApiProblem
from app.extensions import limiter
from models import db
from models.provider import ProviderClient, ProviderToken, digest

API_TITLE = "Xinyidai Open API"
API_VERSION = "1.0.0"
MAX_ID = 2**31 - 1

# Money and rates travel as strings so no client turns them into binary floats.
_MONEY = re.compile(r"^\d{1,16}(\.\d{1,2})?$")
_RATE = re.compile(r"^\d{1,2}(\.\d{1,4})?$")


def _decimal_of(pattern: re.Pattern[str], example: str) -> Callable[[Any], Decimal]:
    def parse(value: Any) -> Decimal:
        if isinstance(value, Decimal):
            return value
        if isinstance(value, str) and pattern.fullmatch(value):
            try:
                return Decimal(value)
            except InvalidOperation:
                pass
        raise ValueError(f'a decimal number as a string, e.g. "{example}"')

    return parse


Money = Annotated[
    Decimal,
    PlainValidator(_decimal_of(_MONEY, "150000.00")),
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str),
    WithJsonSchema({"type": "string", "pattern": _MONEY.pattern, "examples": ["150000.00"]}),
]
Rate = Annotated[
    Decimal,
    PlainValidator(_decimal_of(_RATE, "4.35")),
    PlainSerializer(lambda d: format(d.normalize(), "f"), return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _RATE.pattern,
            "description": "annual, percent",
            "examples": ["4.35"],
        }
    ),
]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldError(BaseModel):
    field: str | None
    message: str
    line: int | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class Page(BaseModel):
    page: int
    per_page: int
    total: int


class PageQuery(ApiModel):
    model_config = ConfigDict(extra="ignore")
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(50, ge=1, le=200)


PROBLEM_STATUSES = {
    400: "Malformed request (problem details)",
    401: "Missing, invalid, expired or revoked access token",
    403: "The token lacks the scope this operation needs",
    404: "Not found — or not visible to this client; the two are indistinguishable",
    409: "Conflict: an illegal state change, or an Idempotency-Key reused or in progress",
    413: "Too large",
    415: "The body is not JSON",
    422: "Invalid fields (problem details with one entry per field)",
    429: "Rate limit reached; see Retry-After",
}


@dataclass
class Operation:
    method: str
    rule: str  # Flask rule, relative to /api/v1
    endpoint: str
    summary: str
    description: str
    tag: str
    scope: str | None
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    form: dict[str, Any] | None  # OAuth endpoints: a form body (schema inline)
    response: type[BaseModel] | None
    status: int
    idempotent: bool
    problems: tuple[int, ...]
    extra_responses: dict[int, tuple[type[BaseModel], str]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", self.rule)

    @property
    def path_params(self) -> list[tuple[str, str]]:
        return [
            (name, conv or "string") for conv, name in re.findall(r"<(?:(\w+):)?(\w+)>", self.rule)
        ]


OPERATIONS: list[Operation] = []


# Rate limits: per client (the token's client, else the caller's address) and per address.


def _client_key() -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        client_pk = db.session.scalar(
            sa.select(ProviderToken.client_pk).where(
                ProviderToken.access_token_hash == digest(header[7:].strip())
            )
        )
        if client_pk is not None:
            return f"client:{client_pk}"
    return f"ip:{get_remote_address()}"


def _client_limit() -> str:
    return str(current_app.config.get("API_RATE_LIMIT_CLIENT", "300 per minute"))


def _ip_limit() -> str:
    return str(current_app.config.get("API_RATE_LIMIT_IP", "600 per minute"))


def refuse_credentials_outside_header() -> None:
    """Credentials in a URL end up in logs and histories; a token goes in the Authorization
    header only (never in the query string or a form)."""
    in_url = {"access_token", "client_secret"} & set(request.args)
    in_form: set[str] = set()
    if request.mimetype == "application/x-www-form-urlencoded" and not request.path.startswith(
        "/api/v1/oauth/"
    ):
        in_form = {"access_token"} & set(request.form)
    if in_url or in_form:
        raise ApiProblem(
            400,
            "credentials-in-url",
            _l("Credentials in the URL"),
            _l(
                "Send access tokens in the Authorization header and client secrets in the "
                "request body or with HTTP Basic authentication, never in the URL."
            ),
            errors=[
                {"field": name, "message": str(_l("not accepted in the URL"))}
                for name in sorted(in_url)
            ]
            + [
                {"field": name, "message": str(_l("not accepted in the body"))}
                for name in sorted(in_form)
            ],
        )


def _field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    return [
        {
            "field": prefix + ".".join(str(p) for p in error["loc"]) if error["loc"] else None,
            "message": error["msg"],
        }
        for error in exc.errors(include_url=False)
    ]


def _parse_query(model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ApiProblem(
            422, "invalid-query", _l("Invalid query"), _l("Some query parameters are invalid."),
            errors=_field_errors(exc),
        ) from exc  # fmt: skip


def _parse_body(model: type[BaseModel]) -> BaseModel:
    if not request.is_json:
        raise ApiProblem(
            415, "not-json", _l("Not JSON"),
            _l("Send a JSON object with Content-Type application/json."),
        )  # fmt: skip
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiProblem(
            400, "invalid-body", _l("Invalid body"), _l("The body must be a JSON object."),
            errors=[{"field": None, "message": str(_l("a JSON object is required"))}],
        )  # fmt: skip
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ApiProblem(
            422, "invalid-fields", _l("Invalid fields"), _l("Some fields are invalid."),
            errors=_field_errors(exc),
        ) from exc  # fmt: skip


def current_client() -> ProviderClient:
    client: ProviderClient = g.api_client
    return client


def require_scope(scope: str) -> ProviderClient:
    """The bearer token's client, if the token is valid and carries ``scope``."""
    from app.api import oauth

    token = oauth.current_token()
    if scope not in token.get_scope().split() or scope not in token.client.scope_list:
        raise ApiProblem(
            403,
            "insufficient-scope",
            _l("Insufficient scope"),
            _l("This operation needs a token with the scope %(s)s.", s=scope),
            headers={
                "WWW-Authenticate": f'Bearer realm="xinyidai", error="insufficient_scope", '
                f'scope="{scope}"'
            },
        )
    g.api_client = token.client
    return token.client


def serialize(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json", exclude_none=False)
    return result


def operation(
    method: str,
    rule: str,
    *,
    summary: str,
    tag: str,
    scope: str | None = None,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    form: dict[str, Any] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    problems: tuple[int, ...] = (400, 401, 403, 404, 422, 429),
    extra_responses: dict[int, tuple[type[BaseModel], str]] | None = None,
    raw: bool = False,
    key_header: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare and register an API operation (see the module's docstring).

    The view gets the path's values, then ``query=`` and ``body=`` the parsed models when
    declared; it returns the success model (or, with ``raw``, a finished response)."""
    idempotent = method == "POST" and scope is not None and not raw
    documents_key = idempotent or key_header

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        doc = (view.__doc__ or "").strip()
        op = Operation(
            method=method, rule=rule, endpoint=view.__name__, summary=summary,
            description=doc, tag=tag, scope=scope, query=query, body=body, form=form,
            response=response, status=status, idempotent=documents_key,
            problems=tuple(sorted({*problems, 429, *((409, 415) if documents_key else ())})),
            extra_responses=extra_responses or {},
        )  # fmt: skip
        OPERATIONS.append(op)

        @functools.wraps(view)
        def wrapper(**values: Any) -> Any:
            from app.api import idempotency

            refuse_credentials_outside_header()
            for name, conv in op.path_params:
                if conv == "int" and not 1 <= int(values[name]) <= MAX_ID:
                    raise not_found()
            if raw:
                return view(**values)
            if scope is not None:
                require_scope(scope)
            kwargs = dict(values)
            if query is not None:
                kwargs["query"] = _parse_query(query)

            def run() -> tuple[int, Any]:
                if body is not None:
                    kwargs["body"] = _parse_body(body)
                return status, serialize(view(**kwargs))

            if idempotent:
                return idempotency.execute(current_client(), run)
            try:
                code, payload = run()
                db.session.commit()
            except ApiProblem:
                db.session.rollback()
                raise
            response_ = jsonify(payload)
            response_.status_code = code
            return response_

        limited = limiter.shared_limit(_ip_limit, scope="api-ip", key_func=get_remote_address)(
            limiter.shared_limit(_client_limit, scope="api-client", key_func=_client_key)(wrapper)
        )
        bp.add_url_rule(rule, endpoint=view.__name__, view_func=limited, methods=[method])
        return view

    return register


def not_found() -> ApiProblem:
    """The one 404 for "does not exist" and "not visible to this client" alike."""
    return ApiProblem(
        404,
        "not-found",
        _l("Not found"),
        _l("There is no such resource for this client."),
    )


# The OpenAPI document ------------------------------------------------------------------


def _param_schema(conv: str) -> dict[str, Any]:
    if conv == "int":
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    return {"type": "string", "pattern": r"^[a-z_]{1,40}$"}


def openapi_document(server_url: str, token_url: str) -> dict[str, Any]:
    """OpenAPI 3.1 from :data:`OPERATIONS` (JSON Schema 2020-12 from the pydantic models)."""
    pairs: list[tuple[type[BaseModel], Any]] = [(Problem, "serialization")]
    for op in OPERATIONS:
        if op.body is not None:
            pairs.append((op.body, "validation"))
        if op.response is not None:
            pairs.append((op.response, "serialization"))
        pairs.extend((m, "serialization") for m, _ in op.extra_responses.values())
    pairs = list(dict.fromkeys(pairs))
    refs, defs = models_json_schema(pairs, ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})

    problem_ref = refs[(Problem, "serialization")]
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        parameters: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": _param_schema(c)}
            for n, c in op.path_params
        ]
        if op.query is not None:
            qschema = op.query.model_json_schema(mode="validation")
            required = set(qschema.get("required", []))
            for name, prop in qschema.get("properties", {}).items():
                prop = {k: v for k, v in prop.items() if k != "title"}
                parameters.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        if op.idempotent:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "description": "Unique per intended effect; a retry with the same key and "
                    "body replays the first response (Idempotent-Replayed: true).",
                    "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,200}$"},
                }
            )
        responses: dict[str, Any] = {}
        if op.response is not None:
            responses[str(op.status)] = {
                "description": op.summary,
                "content": {"application/json": {"schema": refs[(op.response, "serialization")]}},
            }
        for code, (model, text) in op.extra_responses.items():
            responses[str(code)] = {
                "description": text,
                "content": {"application/json": {"schema": refs[(model, "serialization")]}},
            }
        for code in op.problems:
            if str(code) in responses:
                continue
            responses[str(code)] = {
                "description": PROBLEM_STATUSES[code],
                "content": {"application/problem+json": {"schema": problem_ref}},
            }
        entry: dict[str, Any] = {
            "operationId": op.endpoint,
            "summary": op.summary,
            "description": op.description,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": responses,
        }
        if op.scope is not None:
            entry["security"] = [{"oauth2": [op.scope]}]
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        if op.form is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": op.form}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    from models.provider import BANK_SCOPES, PROVIDER_SOURCES

    scopes = {s: s for s in BANK_SCOPES} | {f"ingest:{s}": f"push {s}" for s in PROVIDER_SOURCES}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": "Banks and data providers on Xinyidai. OAuth2 client credentials "
            "(client_secret_basic, client_secret_post or private_key_jwt); bearer tokens in "
            "the Authorization header only; errors as RFC 9457 problem details; amounts and "
            "rates as decimal strings; dates ISO 8601.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": scopes}},
                }
            },
        },
    }


def response_of(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(payload)
    response.status_code = status
    if status >= 400:
        response.mimetype = "application/problem+json"
    response.headers.update(headers or {})
    return response
