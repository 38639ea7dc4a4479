"""The dashboard's dead-letter page (list, replay, discard) and its sign-in.

Dead letters go through the API's rules: only a token that sees every tenant may
see or act on them (`Principal.require_all`), and replay / discard call the API's
route functions. Sign-in checks a token against the gate's tokens and keeps it in
an HttpOnly, SameSite=Strict cookie that the gate reads under `/ui` (see
`ledgerflow.api._gate`)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ledgerflow import outbox
from ledgerflow.api import _admin
from ledgerflow.api._gate import COOKIE, principal, tokens_of
from ledgerflow.api._models import DiscardRequest, ReplayRequest
from ledgerflow.api._runs import App
from ledgerflow.api.ui._actions import form_fields, model
from ledgerflow.api.ui._render import error_page, page
from ledgerflow.domain.errors import InvalidRequest, LedgerflowError

router = APIRouter(include_in_schema=False)
SHOWN = 200
COOKIE_DAYS = 7


@router.get("/ui/dead-letters", response_class=HTMLResponse)
def dead_letters(request: Request, lf: App,
                 notice: Annotated[str, Query(max_length=200)] = "") -> Response:
    """Dead outbox rows, oldest first."""
    try:
        principal(request).require_all("the dead-letter queue")
    except LedgerflowError as exc:
        return error_page(request, exc)
    rows = outbox.dead_letters(lf.db, SHOWN)
    return page(request, "dead_letters.html", rows=rows, notice=notice)


@router.post("/ui/dead-letters/{action}", response_class=HTMLResponse)
async def dead_letter_action(request: Request, action: str, lf: App) -> Response:
    """`replay` or `discard` the rows whose ids the form checked."""
    who = principal(request)
    try:
        fields = await form_fields(request)
        ids = [int(i) for i in fields.get("id", []) if i.isdigit()]
        if not ids:
            raise InvalidRequest("select at least one dead letter")
        if action == "replay":
            body: Any = model(ReplayRequest, {"ids": ids})
            done = await run_in_threadpool(_admin.replay, request, lf, who, body)
        elif action == "discard":
            body = model(DiscardRequest, {"ids": ids})
            done = await run_in_threadpool(_admin.discard, request, lf, who, body)
        else:
            raise InvalidRequest(f"no action {action!r}; the actions are replay, discard")
    except LedgerflowError as exc:
        rows = await run_in_threadpool(outbox.dead_letters, lf.db, SHOWN)
        if exc.http_status == 403:
            return error_page(request, exc)
        return page(request, "dead_letters.html", exc.http_status, rows=rows,
                    problem=f"{exc.code}: {exc}")
    count = len(_done_ids(done))
    notice = f"{'replayed' if action == 'replay' else 'discarded'} {count} dead letter(s)"
    return RedirectResponse(f"/ui/dead-letters?{urlencode({'notice': notice})}",
                            status_code=303)


def _done_ids(response: Response) -> list[int]:
    body: dict[str, list[int]] = orjson.loads(bytes(response.body))
    return next(iter(body.values()))


@router.get("/ui/login", response_class=HTMLResponse)
def login_page(request: Request,
               next: Annotated[str, Query(max_length=2000)] = "/ui") -> Response:
    """The sign-in form (or, with no tokens configured, a note that none is needed)."""
    return page(request, "login.html", next=_safe_next(next))


@router.post("/ui/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    try:
        fields = await form_fields(request)
    except LedgerflowError as exc:
        return error_page(request, exc)
    token = fields.get("token", [""])[-1].strip()
    target = _safe_next(fields.get("next", ["/ui"])[-1])
    if tokens_of(request).find(token) is None:
        return page(request, "login.html", 401, next=target,
                    problem="unauthorized: that token is not one of LEDGERFLOW_API_TOKENS")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, max_age=COOKIE_DAYS * 86400, path="/",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/ui/logout")
def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    """Only a path of this dashboard: never another site (open redirect)."""
    if target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui"
