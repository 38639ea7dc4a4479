"""The worker's HTTP side of dispatch: `Endpoint` posts signed requests to one handler
URL and reads its answers; `parse_table` reads `LEDGERFLOW_DISPATCH`.

A timeout, a connection error or a 5xx is retried at once a few times (the handler
may be restarting); then `DispatchUnavailable` is raised and the worker gives the run
back, due again after a back-off. A handler that speaks another protocol version
(it refuses ours, or answers another) raises `ProtocolMismatch`, naming both.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from pydantic import ValidationError

from ledgerflow.domain.errors import LedgerflowError
from ledgerflow.eventstore.records import new_id
from ledgerflow.remote.protocol import (
    PROTOCOL,
    SIGNATURE_HEADER,
    CancelRequest,
    DispatchRequest,
    DispatchResponse,
)
from ledgerflow.remote.signing import signature

INLINE = "inline"


class DispatchUnavailable(LedgerflowError):
    """The handler did not answer (connection, timeout, 5xx), or refused to (401)."""


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

    def call(self, request: DispatchRequest) -> DispatchResponse:
        """Post one request (signed anew each try); the handler's answer."""
        body = request.model_dump_json(by_alias=True).encode()
        response = self._send("POST", "/run", body)
        if response.status_code == 404:
            raise RemoteUnknownWorkflow(f"the handler at {self.url} does not serve it: "
                                        f"{self._message(response)}")
        try:
            data = response.json()
        except ValueError:
            raise ProtocolMismatch(f"the handler at {self.url} answered {response.status_code} "
                                   "with a body that is not JSON") from None
        if not isinstance(data, dict):
            data = {}
        if data.get("error") == "protocol" or data.get("protocol") != PROTOCOL:
            raise ProtocolMismatch(
                f"the handler at {self.url} speaks dispatch protocol "
                f"{data.get('protocol')!r}, this worker speaks {PROTOCOL}: upgrade one of "
                f"them ({self._message(response)})")
        if response.status_code >= 400:
            raise DispatchUnavailable(f"the handler at {self.url} refused the request "
                                      f"({response.status_code}): {self._message(response)}")
        try:
            return DispatchResponse.model_validate(data)
        except ValidationError as error:
            raise ProtocolMismatch(f"the handler at {self.url} answered something that is "
                                   f"not a dispatch response: {error}") from None

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

    def _send(self, method: str, path: str, body: bytes) -> httpx.Response:
        last: Exception | None = None
        for attempt in range(self._tries):
            if attempt:
                time.sleep(0.1 * 3 ** (attempt - 1))
            headers = {"content-type": "application/json",
                       SIGNATURE_HEADER: signature(self._secret, body)}
            try:
                response = self._http.request(method, self.url + path, content=body,
                                              headers=headers)
            except httpx.HTTPError as error:
                last = error
                continue
            if response.status_code < 500:
                return response
            last = DispatchUnavailable(f"{response.status_code}: {response.text[:200]}")
        raise DispatchUnavailable(f"the handler at {self.url} did not answer after "
                                  f"{self._tries} tries: {type(last).__name__}: {last}")
