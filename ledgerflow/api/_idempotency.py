"""`Idempotency-Key` for the API's POST routes.

The key is scoped by the caller's tenant and the route template, and bound to a
fingerprint (sha256 of the canonical JSON of the path parameters and the body).

A route hands the key to the command it runs (`RequestKey.key`). The command claims
it and writes the response to remember (status and body, built from what the command
wrote) in its own transaction, with its events (`eventstore.idempotency.run_once`):
there is no moment when the command is committed and its key is not. A retry with
the same key and body gets the first response verbatim (header
`Idempotent-Replayed: true`); the same key with another body is a 409 `conflict`
(a trigger's names the run the key created); a key held by a request that has not
finished is a 409 `idempotency_in_progress`. A request that fails writes nothing, its
key included, so it can be retried.

The dead-letter replay is not an engine command (the outbox replays rows in a
transaction of its own), so it takes its key in two steps (`idempotent`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine

from ledgerflow.api._errors import json_response
from ledgerflow.api._gate import Principal
from ledgerflow.domain.errors import LedgerflowError
from ledgerflow.eventstore.idempotency import (
    IdempotencyInProgress,
    IdempotencyKey,
    IdempotencyKeys,
    InProgress,
    Replay,
)

T = TypeVar("T")

Outcome = tuple[int, Any]
"""A route's status code and JSON body."""

_REPLAYED = {"idempotent-replayed": "true"}


def fingerprint(params: dict[str, Any], body: BaseModel | None) -> str:
    """sha256 of the canonical JSON of the path parameters and the body as sent."""
    sent = None if body is None else body.model_dump(mode="json", by_alias=True,
                                                     exclude_unset=True)
    canonical = orjson.dumps({"params": params, "body": sent}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _scope(request: Request, who: Principal) -> str:
    route = getattr(request.scope.get("route"), "path", request.url.path)
    return f"api:{who.scope}:{request.method} {route}"


class RequestKey(Generic[T]):
    """One request's `Idempotency-Key` (or none), for the command its route runs.

    `respond(conn, outcome)` makes the response from the command's outcome, reading
    through `conn`; under a key it runs in the command's transaction and its result is
    what the key remembers. `recall(response)` turns a remembered response back into
    the command's outcome, for a replay. `key` is what the route passes down."""

    def __init__(self, db: Engine, request: Request, who: Principal, key: str | None,
                 params: dict[str, Any], body: BaseModel | None,
                 respond: Callable[[Connection, T], Outcome],
                 recall: Callable[[Outcome], T],
                 conflict: Callable[[Outcome], LedgerflowError] | None = None) -> None:
        self._db, self._respond, self._recall = db, respond, recall
        self._kept: Outcome | None = None
        self._replayed = False
        self.key: IdempotencyKey[T] | None = None if key is None else IdempotencyKey(
            _scope(request, who), key, fingerprint(params, body),
            remember=self._remember, recall=self._replay,
            conflict=None if conflict is None else _conflict(conflict))

    def _remember(self, conn: Connection, outcome: T) -> dict[str, Any]:
        status, data = self._kept = self._respond(conn, outcome)
        return {"status": status, "body": data}

    def _replay(self, kept: Any) -> T:
        self._kept, self._replayed = (int(kept["status"]), kept["body"]), True
        return self._recall(self._kept)

    def response(self, outcome: T) -> Response:
        """The response remembered (or replayed) under the key; without a key, what
        `respond` makes of `outcome` now."""
        if self._kept is None:
            with self._db.connect() as conn:
                self._kept = self._respond(conn, outcome)
        return json_response(*self._kept, _REPLAYED if self._replayed else None)


def _conflict(named: Callable[[Outcome], LedgerflowError],
              ) -> Callable[[Any], LedgerflowError | None]:
    """The key's conflict error from its kept response (None while in progress)."""
    return lambda kept: None if kept is None else named((int(kept["status"]), kept["body"]))


def idempotent(keys: IdempotencyKeys, request: Request, who: Principal, key: str | None,
               params: dict[str, Any], body: BaseModel | None,
               action: Callable[[], Outcome]) -> Response:
    """Run `action` once per (caller, route, key), keeping the key in two steps
    (acquire, then complete after `action` committed); replay its response for retries.
    Only for actions that are not commands: see the module docstring."""
    if key is None:
        return json_response(*action())
    scope = _scope(request, who)
    outcome = keys.acquire(scope, key, fingerprint(params, body))
    if isinstance(outcome, Replay):
        stored = outcome.result
        return json_response(int(stored["status"]), stored["body"], _REPLAYED)
    if isinstance(outcome, InProgress):
        raise IdempotencyInProgress(key)
    try:
        status, data = action()
    except BaseException:
        keys.release(scope, key)
        raise
    keys.complete(scope, key, {"status": status, "body": data})
    return json_response(status, data)
