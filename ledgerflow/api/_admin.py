"""Routes outside `/api/runs`: the outbox's dead letters and the health check."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ledgerflow import outbox
from ledgerflow.api._errors import json_response
from ledgerflow.api._idempotency import Outcome, idempotent
from ledgerflow.api._models import (
    DeadLetterPage,
    DiscardOut,
    DiscardRequest,
    ErrorBody,
    Health,
    ReplayOut,
    ReplayRequest,
)
from ledgerflow.api._runs import App, Caller, IdemKey, _errors
from ledgerflow.domain.errors import StoreUnavailable
from ledgerflow.domain.wire import Page

router = APIRouter(tags=["outbox"])


@router.get("/api/outbox/dead-letters", response_model=DeadLetterPage, responses=_errors(403))
def dead_letters(lf: App, who: Caller,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """Dead outbox rows, oldest first, with the error that killed them."""
    who.require_all("the dead-letter queue")
    rows = outbox.dead_letters(lf.db, limit)
    return json_response(200, Page(rows).wire_values())


@router.post("/api/outbox/dead-letters/replay", response_model=ReplayOut,
             responses=_errors(403, 409))
def replay(request: Request, lf: App, who: Caller, body: ReplayRequest | None = None,
           idempotency_key: IdemKey = None) -> Response:
    """Put dead rows (`ids`, or the oldest `limit`, or all) back to pending."""
    who.require_all("the dead-letter queue")

    def action() -> Outcome:
        ids = body.ids if body and body.ids else ()
        limit = body.limit if body else None
        return 200, {"replayed": outbox.replay_dead(lf.db, ids, limit, clock=lf.clock)}

    return idempotent(lf.keys, request, who, idempotency_key, {}, body, action)


@router.post("/api/outbox/dead-letters/discard", response_model=DiscardOut,
             responses=_errors(403, 409, 422))
def discard(request: Request, lf: App, who: Caller, body: DiscardRequest,
            idempotency_key: IdemKey = None) -> Response:
    """Give up dead rows (`ids`): never sent; the later events of their runs flow on.

    Ids that are not dead rows (published, pending, unknown) are left out of
    `discarded`."""
    who.require_all("the dead-letter queue")

    def action() -> Outcome:
        return 200, {"discarded": outbox.discard_dead(lf.db, body.ids)}

    return idempotent(lf.keys, request, who, idempotency_key, {}, body, action)


health = APIRouter(tags=["health"])


@health.get("/healthz", response_model=Health, responses={503: {"model": ErrorBody}})
def healthz(lf: App) -> Response:
    """Liveness, and whether the store answers."""
    try:
        with lf.db.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreUnavailable(f"the store does not answer: {exc.__class__.__name__}") from None
    return json_response(200, {"status": "ok"})
