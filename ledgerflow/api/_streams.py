"""`GET /api/runs/{id}/stream`: a run's stream chunks as server-sent events.

Each chunk is one SSE message: `id` its version in the run's stream, `event: chunk`,
`data` the chunk's record (`queries.StreamEntry`). A reader starts after a position
(`?from=VERSION`, or the `Last-Event-ID` header a reconnecting EventSource sends;
default 0: every chunk), so a reconnect loses nothing and repeats nothing. When the run
has ended (and every chunk before that was sent), an `event: end` message carries its
status (`data: {"status": ...}`) and the response ends. A response also ends after
`LEDGERFLOW_STREAM_MAX_SECONDS` without the run ending (no `end` message): the reader
reconnects from the last id it got. A quiet stream gets a comment line every
`KEEP_ALIVE_SECONDS`. The store is polled (`POLL_SECONDS`), off the event loop.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from ledgerflow._app import Ledgerflow
from ledgerflow.api._errors import ApiError
from ledgerflow.api._runs import App, RunId, _errors
from ledgerflow.projections import queries

POLL_SECONDS = 0.2
KEEP_ALIVE_SECONDS = 15.0

router = APIRouter(prefix="/api/runs", tags=["runs"])


def _start(from_: int | None, last_event_id: str | None) -> int:
    if from_ is not None:
        return from_
    if last_event_id is None or not last_event_id.strip():
        return 0
    if not last_event_id.strip().isdigit():
        raise ApiError(422, "invalid_request", f"Last-Event-ID {last_event_id!r} is not a "
                       "stream position (a non-negative integer)",
                       {"lastEventId": last_event_id})
    return int(last_event_id.strip())


@router.get("/{id}/stream", response_class=StreamingResponse, responses={
    200: {"content": {"text/event-stream": {}},
          "description": "server-sent events: `chunk` messages, then `end`"},
    **_errors(404, 409)})
def stream(run_id: RunId, request: Request, lf: App,
           from_: Annotated[int | None, Query(alias="from", ge=0, lt=2**63)] = None,
           last_event_id: Annotated[str | None, Header(alias="Last-Event-ID",
                                                        max_length=20)] = None,
           ) -> StreamingResponse:
    """The run's stream chunks after position `from` (or `Last-Event-ID`), as they are
    appended, until the run ends."""
    after = _start(from_, last_event_id)
    limit: float = request.app.state.stream_max_seconds
    return StreamingResponse(_events(lf, request, run_id, after, limit),
                             media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def _events(lf: Ledgerflow, request: Request, run_id: str, after: int,
                  limit: float) -> AsyncIterator[bytes]:
    deadline = time.monotonic() + limit
    read_from = 0  # the first read meets the run's end even if `after` is past it
    quiet_since = time.monotonic()
    while True:
        found = await anyio.to_thread.run_sync(queries.stream_after, lf.store, run_id,
                                               read_from)
        read_from = found.last_version
        for entry in found.chunks:
            if entry.version > after:
                quiet_since = time.monotonic()
                yield _message("chunk", orjson.dumps(entry.to_wire()), entry.version)
        if found.ended is not None:
            yield _message("end", orjson.dumps({"status": found.ended}))
            return
        if time.monotonic() >= deadline or await request.is_disconnected():
            return
        if time.monotonic() - quiet_since >= KEEP_ALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"  # a comment: readers ignore it; proxies see traffic
        await anyio.sleep(POLL_SECONDS)


def _message(event: str, data: bytes, event_id: int | None = None) -> bytes:
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return head + b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
