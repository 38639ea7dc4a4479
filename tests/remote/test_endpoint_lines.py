"""A handler that answers in lines but breaks the protocol (injected faults, through
httpx's mock transport): the worker's `Endpoint` says what went wrong and whether the
request may have run something (`lost`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from ledgerflow.domain import events as ev
from ledgerflow.remote.endpoint import DispatchUnavailable, Endpoint, ProtocolMismatch
from ledgerflow.remote.protocol import PROTOCOL, STREAM_TYPE, DispatchRequest, NewRecord


def _endpoint(*lines: bytes) -> Endpoint:
    def answer(request: httpx.Request) -> httpx.Response:
        assert STREAM_TYPE in request.headers["accept"]
        return httpx.Response(200, headers={"content-type": STREAM_TYPE},
                              content=b"".join(lines))

    endpoint = Endpoint("http://handler.invalid/ledgerflow", "secret")
    endpoint._http = httpx.Client(transport=httpx.MockTransport(answer))
    return endpoint


def _request() -> DispatchRequest:
    return DispatchRequest(protocol=PROTOCOL, request_id=uuid.uuid4().hex, run_id="r-1",
                           workflow_id="w", workflow_version="1", journal=[],
                           now=datetime.now(UTC))


def _chunk_line(event: ev.Event) -> bytes:
    return b'{"chunk":%s}\n' % NewRecord.of(event).model_dump_json(by_alias=True).encode()


STEP_CHUNK = ev.StreamChunk(name="tokens", chunk="hi", step_id="s", attempt=1, seq=1)


def test_an_error_line_is_a_lost_request_naming_the_handlers_message() -> None:
    seen: list[ev.StreamChunk] = []
    endpoint = _endpoint(_chunk_line(STEP_CHUNK),
                         b'{"error":{"protocol":1,"error":"internal","message":"boom"}}\n')
    with pytest.raises(DispatchUnavailable, match="broke off: boom") as raised:
        endpoint.call(_request(), seen.append)
    assert raised.value.lost and seen == [STEP_CHUNK]


def test_lines_that_end_without_an_answer_are_a_lost_request() -> None:
    endpoint = _endpoint(_chunk_line(STEP_CHUNK))
    with pytest.raises(DispatchUnavailable, match="without one") as raised:
        endpoint.call(_request(), lambda chunk: None)
    assert raised.value.lost


def test_a_chunk_line_that_is_not_a_steps_chunk_is_a_protocol_mismatch() -> None:
    workflow_chunk = ev.StreamChunk(name="tokens", chunk="hi", op="$stream:tokens")
    for line in (_chunk_line(workflow_chunk), _chunk_line(ev.RunStarted(worker="w")),
                 b"not json\n"):
        with pytest.raises(ProtocolMismatch) as raised:
            _endpoint(line).call(_request(), lambda chunk: None)
        assert raised.value.lost  # it reached the handler: what ran there is unknown
