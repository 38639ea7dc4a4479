"""Signing dispatch requests: `X-Ledgerflow-Signature: t=<unix seconds>,v1=<hex>`, the
hex being HMAC-SHA256 with the shared secret (`LEDGERFLOW_DISPATCH_SECRET`) of
`"<t>.<body>"`. The handler refuses (401) a missing or malformed header, a wrong
signature, a timestamp more than `max_age` (5 minutes) away from its clock, and a
request id it has already accepted within that window (`ReplayGuard`)."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable

MAX_AGE = 300.0


class BadSignature(Exception):
    """The request is not signed as the handler's secret signs (401)."""


def signature(secret: str, body: bytes, at: float | None = None) -> str:
    """The header value that signs `body` at unix time `at` (default: now)."""
    stamp = int(time.time() if at is None else at)
    return f"t={stamp},v1={_mac(secret, stamp, body)}"


def _mac(secret: str, stamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, header: str | None, body: bytes, now: float | None = None,
           max_age: float = MAX_AGE) -> int:
    """The header's timestamp if it signs `body` and is fresh; `BadSignature` if not."""
    if not header:
        raise BadSignature("the request is not signed (no X-Ledgerflow-Signature header)")
    parts = dict(p.strip().partition("=")[::2] for p in header.split(","))
    stamp_text, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp_text.isdigit() or not given:
        raise BadSignature("X-Ledgerflow-Signature is not of the form t=<unix seconds>,v1=<hex>")
    stamp = int(stamp_text)
    if not hmac.compare_digest(_mac(secret, stamp, body), given):
        raise BadSignature("the request's signature does not match (another secret?)")
    moment = time.time() if now is None else now
    if abs(moment - stamp) > max_age:
        raise BadSignature(f"the request is stale: signed at {stamp}, {moment - stamp:.0f}s "
                           f"away from the handler's clock (at most {max_age:.0f}s)")
    return stamp


class ReplayGuard:
    """The request ids accepted within the last `max_age` seconds."""

    def __init__(self, max_age: float = MAX_AGE,
                 clock: Callable[[], float] = time.time) -> None:
        self._max_age, self._clock = max_age, clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def accept(self, request_id: str) -> None:
        """Note `request_id`; `BadSignature` if it was accepted already."""
        now = self._clock()
        with self._lock:
            if len(self._seen) > 1024:
                self._seen = {k: t for k, t in self._seen.items() if now - t <= self._max_age}
            seen = self._seen.get(request_id)
            if seen is not None and now - seen <= self._max_age:
                raise BadSignature(f"request {request_id!r} was already answered (a replay)")
            self._seen[request_id] = now
