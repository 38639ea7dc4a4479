"""`Idempotency-Key` for the API's POST routes.

The key is scoped by the caller's tenant and the route template, and bound to a
fingerprint (sha256 of the canonical JSON of the path parameters and the body).
The first request runs and its status and body are remembered; a retry with the
same key and body gets them back verbatim (header `Idempotent-Replayed: true`);
the same key with another body is a 422; a retry while the first is still
running is a 409. A request that fails is forgotten, so it can be retried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel

from ledgerflow.api._errors import ApiError, json_response
from ledgerflow.api._gate import Principal
from ledgerflow.eventstore.idempotency import IdempotencyKeys, InProgress, Replay

Outcome = tuple[int, Any]
"""A route's status code and JSON body."""


def fingerprint(params: dict[str, Any], body: BaseModel | None) -> str:
    """sha256 of the canonical JSON of the path parameters and the body as sent."""
    sent = None if body is None else body.model_dump(mode="json", by_alias=True,
                                                     exclude_unset=True)
    canonical = orjson.dumps({"params": params, "body": sent}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def idempotent(keys: IdempotencyKeys, request: Request, who: Principal, key: str | None,
               params: dict[str, Any], body: BaseModel | None,
               action: Callable[[], Outcome]) -> Response:
    """Run `action` once per (caller, route, key); replay its response for retries."""
    if key is None:
        return json_response(*action())
    route = getattr(request.scope.get("route"), "path", request.url.path)
    scope = f"api:{who.scope}:{request.method} {route}"
    outcome = keys.acquire(scope, key, fingerprint(params, body))
    if isinstance(outcome, Replay):
        stored = outcome.result
        return json_response(int(stored["status"]), stored["body"],
                             {"idempotent-replayed": "true"})
    if isinstance(outcome, InProgress):
        raise ApiError(409, "idempotency_in_progress",
                       f"a request with idempotency key {key!r} is still being processed; "
                       "retry later", {"key": key})
    try:
        status, data = action()
    except BaseException:
        keys.release(scope, key)
        raise
    keys.complete(scope, key, {"status": status, "body": data})
    return json_response(status, data)
