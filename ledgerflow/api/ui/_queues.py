"""The dashboard's queues page: every queue's limits and figures; edit, pause, resume.

The list is what `GET /api/queues` lists (`engine.queues.list()`, readable by any
signed-in token, as there). The forms post here; each builds the API's request
model from the form (`QueueRequest`, so the same validation and the same 422
messages) and calls the API's route function with the caller's principal (so only a
token that sees every tenant may change a queue, 403 otherwise, and the change is a
`QueueChanged` event with the caller as actor). A queue's name travels in the form,
not the path: a name may hold any printable character, `/` included."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ledgerflow.api import _queues
from ledgerflow.api._gate import Principal, principal
from ledgerflow.api._models import QueueRequest
from ledgerflow.api._runs import App
from ledgerflow.api.ui._actions import Form, form_of, model
from ledgerflow.api.ui._render import error_page, page
from ledgerflow.domain.errors import InvalidRequest, LedgerflowError

router = APIRouter(include_in_schema=False)
LIMITS = ("concurrency", "per_key_concurrency")


@router.get("/ui/queues", response_class=HTMLResponse)
def queues_page(request: Request, lf: App,
                notice: Annotated[str, Query(max_length=300)] = "") -> Response:
    """Every queue by name: state, limits, depth, executing, oldest waiting age."""
    return page(request, "queues.html", queues=lf.engine.queues.list(), notice=notice)


def limits_body(form: Form) -> QueueRequest:
    """The `PUT /api/queues/{name}` body the edit form means: every limit it shows, an
    empty field meaning no limit (null), as the API reads null."""
    values: dict[str, Any] = {name: form.get(name, "").strip() or None for name in LIMITS}
    rate = form.get("rate_limit", "").strip()
    period = form.get("rate_period_seconds", "").strip()
    if period and not rate:
        raise InvalidRequest("rate_limit: a rate period needs a limit (run starts per "
                             "period); leave both empty for no rate limit")
    values["rate_limit"] = None if not rate else (
        {"limit": rate, "period_seconds": period} if period else {"limit": rate})
    body: QueueRequest = model(QueueRequest, values)
    return body


def _edit(request: Request, lf: Any, who: Principal, name: str, form: Form) -> str:
    _queues.put_queue(name, limits_body(form), lf, who)
    return f"queue {name!r} saved"


def _pause(request: Request, lf: Any, who: Principal, name: str, form: Form) -> str:
    _queues.pause_queue(name, lf, who)
    return f"queue {name!r} paused"


def _resume(request: Request, lf: Any, who: Principal, name: str, form: Form) -> str:
    _queues.resume_queue(name, lf, who)
    return f"queue {name!r} resumed"


ACTIONS = {"edit": _edit, "pause": _pause, "resume": _resume}


@router.post("/ui/queues/{action}", response_class=HTMLResponse)
async def queue_action(request: Request, action: str, lf: App) -> Response:
    """`edit` (create or change limits), `pause` or `resume` the queue the form names;
    a refusal shows the page again with the API's status and message."""
    who = principal(request)
    name = ""
    try:
        form = await form_of(request)
        do = ACTIONS.get(action)
        if do is None:
            raise InvalidRequest(f"no action {action!r}; the actions are {', '.join(ACTIONS)}")
        name = form.get("name", "")
        if not name.strip():
            raise InvalidRequest("name: a queue name is required")
        notice = await run_in_threadpool(do, request, lf, who, name, form)
    except LedgerflowError as exc:
        if exc.http_status in (401, 403):
            return error_page(request, exc)
        queues = await run_in_threadpool(lf.engine.queues.list)
        which = f"queue {name!r} unchanged: " if name.strip() else ""
        return page(request, "queues.html", exc.http_status, queues=queues,
                    problem=f"{which}{exc.code}: {exc}")
    return RedirectResponse(f"/ui/queues?{urlencode({'notice': notice})}", status_code=303)
