"""The gate every request passes: bearer-token auth and the request body size limit.

A plain ASGI middleware (no per-request task) so it costs next to nothing on the
hot routes. A declared Content-Length over the limit is refused before anything is
read; a streamed (chunked) body is read up to the limit and refused past it. It
puts the caller's `Principal` in the ASGI scope; routes read it with
`principal(request)`.

The dashboard (`/ui`) and `/docs` are for browsers, which cannot send a bearer
header: there (and on `/openapi.json`, which `/docs` loads) the token may also come
in the `ledgerflow_token` cookie the sign-in page sets, and a browser with neither is
sent to that page (303) instead of a 401. The cookie is `SameSite=Strict`, so another
site cannot post a form with it, and the rest of the JSON API takes the header alone.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledgerflow.api._errors import ApiError, error_body

PUBLIC_PATHS = frozenset({"/healthz", "/ui/login"})
PUBLIC_PREFIXES = ("/ui/static/",)
UI_PREFIX = "/ui"
BROWSER_PATHS = (UI_PREFIX, "/docs")
"""Pages a browser opens: a missing token sends it to the sign-in page."""
COOKIE_PATHS = (*BROWSER_PATHS, "/openapi.json")
"""Where the sign-in cookie stands for the bearer header (the JSON API needs the header)."""
COOKIE = "ledgerflow_token"
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


class Tokens:
    """The configured API tokens and whom each admits (empty: auth is off)."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._table = {t.encode(): Principal(None if tenant == "*" else tenant)
                       for t, tenant in tokens.items()}

    def __bool__(self) -> bool:
        return bool(self._table)

    def find(self, token: bytes | str | None) -> Principal | None:
        """Whom `token` admits; None for no token or an unknown one (constant time)."""
        if token is None:
            return None
        raw = token.encode() if isinstance(token, str) else token
        raw = raw.strip()
        found = None
        for known, who in self._table.items():
            if hmac.compare_digest(known, raw):
                found = who
        return found


def tokens_of(request: Request) -> Tokens:
    """The tokens the application's gate checks."""
    tokens: Tokens = request.app.state.tokens
    return tokens


def _cookie_token(header: bytes | None) -> str | None:
    if header is None:
        return None
    try:
        jar = SimpleCookie(header.decode("latin-1"))
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return None if morsel is None else morsel.value


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class BodyTooLarge(ApiError):
    """413: the body is larger than `max_body_bytes`."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload_too_large",
                         f"the request body is larger than {limit} bytes", {"maxBytes": limit})


class Gate:
    """Authenticate (when tokens are configured) and cap the request body size."""

    def __init__(self, app: ASGIApp, tokens: Tokens, max_body_bytes: int) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path: str = scope["path"]
        if self.tokens and not _public(path):
            who = self._authenticate(headers.get(b"authorization"))
            if who is None and path.startswith(COOKIE_PATHS):
                who = self.tokens.find(_cookie_token(headers.get(b"cookie")))
                if who is None and path.startswith(BROWSER_PATHS):
                    await _to_sign_in(send, path)
                    return
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
        return self.tokens.find(token)

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


async def _to_sign_in(send: Send, path: str) -> None:
    location = f"{UI_PREFIX}/login?next={quote(path, safe='/')}"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _reject(send: Send, status: int, code: str, message: str,
                  details: dict[str, Any] | None = None,
                  extra: dict[str, str] | None = None) -> None:
    body = orjson.dumps(error_body(code, message, details))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
