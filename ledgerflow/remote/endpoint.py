"""The worker's HTTP side of dispatch: `Endpoint` posts signed requests to one handler
URL and reads its answers; `parse_table` reads `LEDGERFLOW_DISPATCH`.

A connection that cannot be made is tried again at once a few times (the handler may be
restarting); then `DispatchUnavailable` is raised and the worker gives the run back,
due again after a back-off. A run's request that reached the handler and got no answer
(a timeout, a connection lost mid-request, a 5xx) is not posted again here: it may have
run a step, so `DispatchUnavailable.lost` is set and the worker has the handler count it
as a failed attempt of that step (`transportFailures`, see `protocol`). Listing the
workflows and relaying a cancel run nothing, so they are tried again on any failure.
A handler that speaks another protocol version (it refuses ours, or answers another)
raises `ProtocolMismatch`, naming both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import ValidationError

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import LedgerflowError
from ledgerflow.eventstore.records import new_id
from ledgerflow.remote.protocol import (
    PROTOCOL,
    SIGNATURE_HEADER,
    STREAM_TYPE,
    CancelRequest,
    CheckAnswer,
    CheckRequest,
    DispatchRequest,
    DispatchResponse,
    NewRecord,
)
from ledgerflow.remote.signing import signature

INLINE = "inline"
CHECK_TIMEOUT = 5.0
"""Seconds a trigger waits for the handler to check an input (then the run checks it)."""


class DispatchUnavailable(LedgerflowError):
    """The handler did not answer (connection, timeout, 5xx), or refused to (401).
    `lost`: the request reached the handler (or may have) and its answer was lost."""

    def __init__(self, message: str, lost: bool = False) -> None:
        super().__init__(message)
        self.lost = lost


class ProtocolMismatch(DispatchUnavailable):
    """The handler speaks another dispatch protocol version, or answered nonsense."""


class RemoteUnknownWorkflow(LedgerflowError):
    """The handler does not serve the run's workflow (or that version of it)."""


def parse_table(text: str | None) -> dict[str, str]:
    """`name=URL,other=inline,*=URL` as {workflow: URL or "inline"}; `ValueError`
    naming the entry that is not of that form."""
    table: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, target = (part.strip() for part in item.partition("="))
        if not sep or not name or not (target == INLINE or target.startswith(
                ("http://", "https://"))):
            raise ValueError(f"LEDGERFLOW_DISPATCH entry {item.strip()!r} is not of the form "
                             "workflow=URL or workflow=inline (workflow * for the rest)")
        table[name] = target.rstrip("/") if target != INLINE else target
    return table


class Endpoint:
    """One handler URL (with or without a trailing slash)."""

    def __init__(self, url: str, secret: str, timeout: float = 300.0, tries: int = 3) -> None:
        self.url = url.rstrip("/")
        self._secret, self._tries = secret, tries
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self._http.close()

    def workflows(self) -> list[dict[str, Any]]:
        """What the handler serves (`GET {url}/workflows`)."""
        response = self._send("GET", "/workflows", b"")
        try:
            if response.status_code != 200:
                raise ValueError(response.status_code)
            listed = response.json()
            self._check_protocol(listed.get("protocol"))
            return list(listed["workflows"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ProtocolMismatch(f"GET {self.url}/workflows answered {response.status_code} "
                                   f"without the workflows it serves: {response.text[:200]}"
                                   ) from None

    def call(self, request: DispatchRequest,
             chunks: Callable[[ev.StreamChunk], None] | None = None) -> DispatchResponse:
        """Post one request (signed anew each try); the handler's answer. `chunks`: told
        each step chunk the handler streams before it answers (see `protocol`)."""
        # without failures to tell, the request is what handlers that predate the field read
        unset = None if request.transport_failures else {"transport_failures"}
        body = request.model_dump_json(by_alias=True, exclude=unset).encode()
        response = self._send("POST", "/run", body, runs=True, lines=chunks is not None)
        try:
            if chunks is not None and response.status_code == 200 \
                    and response.headers.get("content-type", "").startswith(STREAM_TYPE):
                return self._answer(200, self._lines(response, chunks), response)
            response.read()
        finally:
            response.close()
        if response.status_code == 404:
            raise RemoteUnknownWorkflow(f"the handler at {self.url} does not serve it: "
                                        f"{self._message(response)}")
        try:
            data = response.json()
        except ValueError:
            raise ProtocolMismatch(f"the handler at {self.url} answered {response.status_code} "
                                   "with a body that is not JSON") from None
        return self._answer(response.status_code, data, response)

    def _lines(self, response: httpx.Response, chunks: Callable[[ev.StreamChunk], None]) -> Any:
        """The answer of a response in lines, after telling `chunks` each chunk before it."""
        try:
            for line in response.iter_lines():
                item = json.loads(line) if line.strip() else {}
                if "chunk" in item:
                    chunk = NewRecord.model_validate(item["chunk"]).event()
                    if not isinstance(chunk, ev.StreamChunk) or chunk.step_id is None:
                        raise ProtocolMismatch(f"the handler at {self.url} streamed a "
                                               f"{chunk.type_name()} as a step's chunk",
                                               lost=True)
                    chunks(chunk)
                elif "answer" in item:
                    return item["answer"]
                elif "error" in item:
                    refusal = item["error"] if isinstance(item["error"], dict) else {}
                    raise DispatchUnavailable(f"the handler at {self.url} broke off: "
                                              f"{refusal.get('message', item['error'])}",
                                              lost=True)
        except DispatchUnavailable:
            raise
        except httpx.HTTPError as error:
            raise DispatchUnavailable(f"the handler at {self.url} stopped answering: "
                                      f"{type(error).__name__}: {error}", lost=True) from None
        except (ValueError, LedgerflowError) as error:  # pydantic's ValidationError too
            raise ProtocolMismatch(f"the handler at {self.url} streamed a line that is not "
                                   f"the protocol's: {error}", lost=True) from None
        raise DispatchUnavailable(f"the handler at {self.url} ended its answer without one",
                                  lost=True)

    def _answer(self, status: int, data: Any, response: httpx.Response) -> DispatchResponse:
        if not isinstance(data, dict):
            data = {}
        if data.get("error") == "protocol" or data.get("protocol") != PROTOCOL:
            raise ProtocolMismatch(
                f"the handler at {self.url} speaks dispatch protocol "
                f"{data.get('protocol')!r}, this worker speaks {PROTOCOL}: upgrade one of "
                f"them ({self._message(response)})")
        if status >= 400:
            raise DispatchUnavailable(f"the handler at {self.url} refused the request "
                                      f"({status}): {self._message(response)}")
        try:
            return DispatchResponse.model_validate(data)
        except ValidationError as error:
            raise ProtocolMismatch(f"the handler at {self.url} answered something that is "
                                   f"not a dispatch response: {error}") from None

    def check_input(self, workflow: str, version: str, value: Any) -> list[dict[str, Any]]:
        """pydantic's errors for `value` as the input of `workflow@version` at the
        handler (none: it takes it); `DispatchUnavailable` when the handler cannot say
        (down, slow, or from before `POST /check`)."""
        body = CheckRequest(protocol=PROTOCOL, request_id=new_id(), workflow_id=workflow,
                            workflow_version=version, input=value
                            ).model_dump_json(by_alias=True).encode()
        response = self._send("POST", "/check", body, timeout=CHECK_TIMEOUT, most=1)
        try:
            answer = CheckAnswer.model_validate(response.json())
        except (ValueError, ValidationError):
            raise DispatchUnavailable(f"the handler at {self.url} did not check the input "
                                      f"({response.status_code}): {response.text[:200]}"
                                      ) from None
        return [] if answer.ok else answer.errors

    def cancel(self, run_id: str) -> bool:
        """Tell the handler run `run_id` was canceled; whether it executes it now."""
        body = CancelRequest(protocol=PROTOCOL, request_id=new_id(),
                             run_id=run_id).model_dump_json(by_alias=True).encode()
        response = self._send("POST", "/cancel", body)
        return response.status_code == 200 and bool(response.json().get("running"))

    def _check_protocol(self, spoken: Any) -> None:
        if spoken != PROTOCOL:
            raise ProtocolMismatch(f"the handler at {self.url} speaks dispatch protocol "
                                   f"{spoken!r}, this worker speaks {PROTOCOL}")

    @staticmethod
    def _message(response: httpx.Response) -> str:
        try:
            return str(response.json().get("message", response.text))
        except ValueError:
            return response.text[:200]
        except httpx.ResponseNotRead:  # an answer in lines: read as it came
            return "an answer in lines"

    def _send(self, method: str, path: str, body: bytes, runs: bool = False,
              lines: bool = False, timeout: float | None = None,
              most: int | None = None) -> httpx.Response:
        """The handler's answer (below 500), its body not read yet when `lines` (the
        caller closes it); `runs`: the request executes the run, so it is sent again
        only while no try reached the handler; `most`: tries at most (default: the
        endpoint's); `timeout`: seconds (default: the endpoint's)."""
        last: Exception | None = None
        tries, limit = 0, most or self._tries
        while tries < limit and not (runs and _reached(last)):
            if tries:
                time.sleep(0.1 * 3 ** (tries - 1))
            tries += 1
            headers = {"content-type": "application/json",
                       SIGNATURE_HEADER: signature(self._secret, body)}
            if lines:
                headers["accept"] = f"{STREAM_TYPE}, application/json"
            try:
                asked = self._http.build_request(
                    method, self.url + path, content=body, headers=headers,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
                response = self._http.send(asked, stream=lines)
                if response.status_code >= 500 and lines:
                    response.read()
            except httpx.HTTPError as error:
                last = error
                continue
            if response.status_code < 500:
                return response
            last = DispatchUnavailable(f"{response.status_code}: {response.text[:200]}")
        raise DispatchUnavailable(f"the handler at {self.url} did not answer "
                                  f"({tries} {'try' if tries == 1 else 'tries'}): "
                                  f"{type(last).__name__}: {last}", lost=runs and _reached(last))


def _reached(error: Exception | None) -> bool:
    """Whether a try that failed with `error` reached the handler (or may have): any
    failure but a connection never made."""
    return error is not None and not isinstance(
        error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
