"""The gate every request passes: bearer-token auth and the request body size limit.

A plain ASGI middleware (no per-request task) so it costs next to nothing on the
hot routes. A declared Content-Length over the limit is refused before anything is
read; a streamed (chunked) body is read up to the limit and refused past it. It
puts the caller's `Principal` in the ASGI scope; routes read it with
`principal(request)`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledgerflow.api._errors import ApiError, error_body

PUBLIC_PATHS = frozenset({"/healthz"})
_SCOPE_KEY = "ledgerflow.principal"


@dataclass(frozen=True)
class Principal:
    """Who calls: `tenant` None means every tenant (no auth configured, or token `*`)."""

    tenant: str | None

    @property
    def scope(self) -> str:
        """A namespace for this caller's idempotency keys."""
        return self.tenant if self.tenant is not None else "*"

    def require_all(self, what: str) -> None:
        """403 unless the caller sees every tenant."""
        if self.tenant is not None:
            raise ApiError(403, "forbidden",
                           f"{what} needs a token that sees every tenant (tenant '*'); this "
                           f"token is bound to tenant {self.tenant!r}")


EVERYONE = Principal(None)


def principal(request: Request) -> Principal:
    """The caller the gate admitted (every tenant when auth is off)."""
    found: Principal = request.scope.get(_SCOPE_KEY, EVERYONE)
    return found


class BodyTooLarge(ApiError):
    """413: the body is larger than `max_body_bytes`."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload_too_large",
                         f"the request body is larger than {limit} bytes", {"maxBytes": limit})


class Gate:
    """Authenticate (when tokens are configured) and cap the request body size."""

    def __init__(self, app: ASGIApp, tokens: dict[str, str], max_body_bytes: int) -> None:
        self.app = app
        self.tokens = {t.encode(): Principal(None if tenant == "*" else tenant)
                       for t, tenant in tokens.items()}
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.tokens and scope["path"] not in PUBLIC_PATHS:
            who = self._authenticate(headers.get(b"authorization"))
            if who is None:
                await _reject(send, 401, "unauthorized",
                              "missing or invalid bearer token (Authorization: Bearer <token>)",
                              extra={"www-authenticate": "Bearer"})
                return
            scope[_SCOPE_KEY] = who
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            if not length.isdigit():
                await _reject(send, 400, "bad_request", "Content-Length is not a number")
            else:
                err = BodyTooLarge(self.max_body)
                await _reject(send, 413, err.code, str(err), err.details())
            return
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            body = await self._read_capped(receive)
            if body is None:
                err = BodyTooLarge(self.max_body)
                await _reject(send, 413, err.code, str(err), err.details())
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _authenticate(self, header: bytes | None) -> Principal | None:
        if header is None:
            return None
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        token = token.strip()
        for known, who in self.tokens.items():
            if hmac.compare_digest(known, token):
                return who
        return None

    async def _read_capped(self, receive: Receive) -> bytes | None:
        """A streamed (chunked) body, read whole; None as soon as it passes the limit."""
        parts: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(parts)
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that first hands over `body` (read already), then the real channel."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reject(send: Send, status: int, code: str, message: str,
                  details: dict[str, Any] | None = None,
                  extra: dict[str, str] | None = None) -> None:
    body = orjson.dumps(error_body(code, message, details))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
