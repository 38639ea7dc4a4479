"""Every error the API returns has one JSON shape: `{error, message, details?}`.

`LedgerflowError`s carry their own code and HTTP status; FastAPI's validation
errors become 422 `invalid_request`; routing errors (unknown path, wrong method)
keep their status. A value the database refuses is bad input (422), not a 500.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException

from ledgerflow.domain.errors import LedgerflowError

log = logging.getLogger("ledgerflow.api")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "invalid_request"}


class ApiError(LedgerflowError):
    """An error decided by the API layer itself (auth, tenancy, size, in-flight keys)."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.http_status, self.code, self._details = status, code, details or {}

    def details(self) -> dict[str, Any]:
        return self._details


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (the API's only encoder)."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if details:
        body["details"] = details
    return body


def _ledgerflow(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LedgerflowError)
    if exc.http_status >= 500:
        log.error("%s on %s %s: %s", exc.code, request.method, request.url.path, exc)
    return json_response(exc.http_status, error_body(exc.code, str(exc), exc.details()))


def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
                 "type": str(e.get("type", ""))} for e in exc.errors()]
    where = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems[:5])
    return json_response(422, error_body("invalid_request", f"invalid request: {where}",
                                         {"errors": problems}))


def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return json_response(exc.status_code, error_body(code, message), dict(exc.headers or {}))


def _data_error(request: Request, exc: Exception) -> Response:
    orig = getattr(exc, "orig", exc)
    return json_response(422, error_body("invalid_request",
                                         f"the database refused a value of the request: {orig}"))


def _too_deep(request: Request, exc: Exception) -> Response:
    return json_response(422, error_body("invalid_request", "the request nests too deeply"))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the `{error, message, details?}` shape."""
    app.add_exception_handler(LedgerflowError, _ledgerflow)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(sa_exc.DataError, _data_error)
    app.add_exception_handler(RecursionError, _too_deep)
