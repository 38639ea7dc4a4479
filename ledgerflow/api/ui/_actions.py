"""The dashboard's commands on a run: signal, resolve token, cancel, rerun, resume.

Each form posts here; the handler builds the JSON API's request model from the form
(so the same validation applies) and calls the API's own route function with the
caller's principal (so the same tenancy, engine call and idempotency rules apply).
Success redirects (303) to the run's page with a notice; an error renders the run's
page again with the API's status and message, and nothing is appended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ledgerflow.api import _runs
from ledgerflow.api._errors import ApiError
from ledgerflow.api._gate import Principal, principal
from ledgerflow.api._models import (
    CancelRequest,
    RerunRequest,
    ResumeRequest,
    SignalRequest,
    TokenRequest,
)
from ledgerflow.api._runs import App, visible_run_id
from ledgerflow.api.ui import _detail
from ledgerflow.api.ui._render import error_page, page
from ledgerflow.domain.errors import InvalidRequest, LedgerflowError

router = APIRouter(include_in_schema=False)

Form = dict[str, str]
Action = Callable[[Request, Any, Principal, str, Form], str]
"""(request, ledgerflow, caller, run id, form) -> where to go (a run id) and a notice."""


async def form_fields(request: Request) -> dict[str, list[str]]:
    """A urlencoded form body posted from one of our own pages. A form another site
    posts (the browser says so in `Sec-Fetch-Site` / `Origin`) is refused (403): with
    no tokens configured nothing else would stop it."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site in ("cross-site", "same-site") or (
            origin is not None and urlsplit(origin).netloc != request.headers.get("host")):
        raise ApiError(403, "forbidden", "a form posted from another site is refused")
    body = (await request.body()).decode("utf-8", "replace")
    return parse_qs(body, keep_blank_values=True)


async def form_of(request: Request) -> Form:
    """`form_fields`, the last value of each field."""
    return {name: values[-1] for name, values in (await form_fields(request)).items()}


def json_field(form: Form, name: str) -> Any:
    """A form field holding JSON (empty: null)."""
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{name} is not valid JSON: {exc}") from None


def model(cls: type[Any], values: dict[str, Any]) -> Any:
    """The API's request model, or InvalidRequest saying which field is wrong."""
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                          for e in exc.errors()[:5])
        raise InvalidRequest(f"invalid request: {where}") from None


def _new_id(response: Response) -> str:
    return str(orjson.loads(bytes(response.body))["id"])


def _signal(request: Request, lf: Any, who: Principal, run_id: str, form: Form) -> str:
    body = model(SignalRequest, {"name": form.get("name", ""),
                                 "payload": json_field(form, "payload")})
    _runs.send_signal(visible_run_id(run_id, lf, who), body, request, lf, who)
    return f"{run_id}\nsignal {body.name!r} sent"


def _token(request: Request, lf: Any, who: Principal, run_id: str, form: Form) -> str:
    token_id = form.get("token_id", "").strip()
    if not token_id:
        raise InvalidRequest("token_id: a token id is required")
    body = model(TokenRequest, {"payload": json_field(form, "payload")})
    _runs.resolve_token(visible_run_id(run_id, lf, who), token_id, request, lf, who, body)
    return f"{run_id}\ntoken {token_id!r} resolved"


def _cancel(request: Request, lf: Any, who: Principal, run_id: str, form: Form) -> str:
    body = model(CancelRequest, {"reason": form.get("reason") or None,
                                 "compensate": form.get("compensate") == "on"})
    _runs.cancel(visible_run_id(run_id, lf, who), request, lf, who, body)
    undo = " (its compensators run first)" if body.compensate else ""
    return f"{run_id}\ncancel requested{undo}"


def _rerun(request: Request, lf: Any, who: Principal, run_id: str, form: Form) -> str:
    response = _runs.rerun(visible_run_id(run_id, lf, who), request, lf, who,
                           model(RerunRequest, {}))
    return f"{_new_id(response)}\nnew run: a rerun of {run_id}"


def _resume(request: Request, lf: Any, who: Principal, run_id: str, form: Form) -> str:
    step = form.get("step", "").strip() or None
    body = model(ResumeRequest, {"resume_from_step": step, "input": json_field(form, "input")})
    response = _runs.resume(visible_run_id(run_id, lf, who), request, lf, who, body)
    where = f" from step {step!r}" if step else ""
    return f"{_new_id(response)}\nnew run: resumes {run_id}{where}"


ACTIONS: dict[str, Action] = {"signal": _signal, "token": _token, "cancel": _cancel,
                              "rerun": _rerun, "resume": _resume}


@router.post("/ui/runs/{run_id}/{action}", response_class=HTMLResponse)
async def act(request: Request, run_id: str, action: str, lf: App) -> Response:
    """Run one of `ACTIONS` on the run; see the module docstring."""
    do = ACTIONS.get(action)
    if do is None:
        return error_page(request, InvalidRequest(
            f"no action {action!r}; the actions are {', '.join(ACTIONS)}"))
    who = principal(request)
    try:
        form = await form_of(request)
        outcome = await run_in_threadpool(do, request, lf, who, run_id, form)
    except LedgerflowError as exc:
        return await run_in_threadpool(_refused, request, lf, who, run_id, exc)
    target, notice = outcome.split("\n", 1)
    return RedirectResponse(f"/ui/runs/{quote(target, safe='')}?{urlencode({'notice': notice})}",
                            status_code=303)


def _refused(request: Request, lf: Any, who: Principal, run_id: str,
             exc: LedgerflowError) -> Response:
    """The run's page again, saying why the action was refused."""
    try:
        detail = _detail.gather(lf, who, run_id)
    except LedgerflowError:
        return error_page(request, exc)
    return page(request, "run.html", exc.http_status, d=detail, run=detail.run,
                problem=f"{exc.code}: {exc}")
