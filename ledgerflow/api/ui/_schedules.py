"""The dashboard's schedules page: every schedule with its next fires; create, edit,
pause, resume, trigger now, delete.

Schedules belong to no tenant, so, as under `/api/schedules`, the page and its
actions need a token that sees every tenant (403 otherwise). Each form builds the
API's request model (`ScheduleRequest`: the same 422 messages for a bad cron, time
zone or interval) and calls the API's route function with the caller's principal.
A schedule's id travels in the form, not the path (an id may hold `/`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ledgerflow.api import _schedules
from ledgerflow.api._gate import Principal, principal
from ledgerflow.api._models import ScheduleChange, ScheduleRequest
from ledgerflow.api._runs import App
from ledgerflow.api.ui._actions import Form, form_of, json_field, model
from ledgerflow.api.ui._render import error_page, page
from ledgerflow.domain.errors import InvalidRequest, LedgerflowError
from ledgerflow.runtime.schedules import ScheduleRecord

router = APIRouter(include_in_schema=False)


def _listed(lf: Any, who: Principal) -> list[ScheduleRecord]:
    who.require_all(_schedules.WHAT)
    return _schedules._schedules(lf).list_schedules()


@router.get("/ui/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, lf: App,
                   notice: Annotated[str, Query(max_length=300)] = "") -> Response:
    """Every live schedule by id: spec, state, next fire times, last fire and its run."""
    try:
        schedules = _listed(lf, principal(request))
    except LedgerflowError as exc:
        return error_page(request, exc)
    return page(request, "schedules.html", schedules=schedules,
                workflows=sorted(lf.engine.registry.names()), notice=notice)


def _spec_fields(form: Form) -> dict[str, Any]:
    """The spec a schedule form means: `when` is a cron expression, or a whole number
    of seconds between fires."""
    when = form.get("when", "").strip()
    if not when:
        raise InvalidRequest("when: give a cron expression (\"0 * * * *\") or a number of "
                             "seconds between fires")
    spec: dict[str, Any] = {"every_seconds": when} if when.isdigit() else {"cron": when}
    return {"workflow_id": form.get("workflow", ""), "input": json_field(form, "input"),
            "timezone": form.get("timezone", "").strip() or "UTC",
            "overlap": form.get("overlap", "skip"), **spec}


def create_body(form: Form) -> ScheduleRequest:
    """The `POST /api/schedules` body the new-schedule form means."""
    body: ScheduleRequest = model(ScheduleRequest, {
        "schedule_id": form.get("id", "").strip(), "paused": form.get("paused") == "on",
        **_spec_fields(form)})
    return body


def _create(request: Request, lf: Any, who: Principal, schedule_id: str, form: Form) -> str:
    response = _schedules.create_schedule(lf, who, create_body(form))
    made = "created" if response.status_code == 201 else "already exists as given"
    return f"schedule {orjson.loads(bytes(response.body))['scheduleId']!r} {made}"


def _update(request: Request, lf: Any, who: Principal, schedule_id: str, form: Form) -> str:
    body: ScheduleChange = model(ScheduleChange, _spec_fields(form))
    _schedules.update_schedule(lf, who, schedule_id, body)
    return f"schedule {schedule_id!r} changed: its next fires follow the new spec"


def _pause(request: Request, lf: Any, who: Principal, schedule_id: str, form: Form) -> str:
    _schedules.pause_schedule(lf, who, schedule_id)
    return f"schedule {schedule_id!r} paused"


def _resume(request: Request, lf: Any, who: Principal, schedule_id: str, form: Form) -> str:
    _schedules.resume_schedule(lf, who, schedule_id)
    return f"schedule {schedule_id!r} resumed: it fires again from now on"


def _trigger(request: Request, lf: Any, who: Principal, schedule_id: str, form: Form) -> str:
    response = _schedules.trigger_schedule(lf, who, schedule_id)
    run_id = orjson.loads(bytes(response.body))["runId"]
    return f"schedule {schedule_id!r} triggered: run {run_id}"


def _delete(request: Request, lf: Any, who: Principal, schedule_id: str, form: Form) -> str:
    _schedules.delete_schedule(lf, who, schedule_id)
    return f"schedule {schedule_id!r} deleted (its runs go on)"


Action = Callable[[Request, Any, Principal, str, Form], str]
ACTIONS: dict[str, Action] = {"create": _create, "update": _update, "pause": _pause,
                              "resume": _resume, "trigger": _trigger, "delete": _delete}


@router.post("/ui/schedules/{action}", response_class=HTMLResponse)
async def schedule_action(request: Request, action: str, lf: App) -> Response:
    """One of `ACTIONS` on the schedule the form's `id` names; a refusal shows the page
    again with the API's status and message."""
    who = principal(request)
    schedule_id = ""
    form: Form = {}
    try:
        form = await form_of(request)
        do = ACTIONS.get(action)
        if do is None:
            raise InvalidRequest(f"no action {action!r}; the actions are {', '.join(ACTIONS)}")
        who.require_all(_schedules.WHAT)
        schedule_id = form.get("id", "")
        if action != "create" and not schedule_id:
            raise InvalidRequest("id: a schedule id is required")
        notice = await run_in_threadpool(do, request, lf, who, schedule_id, form)
    except LedgerflowError as exc:
        if exc.http_status in (401, 403):
            return error_page(request, exc)
        schedules = await run_in_threadpool(_listed, lf, who)
        which = f"schedule {schedule_id!r} unchanged: " if schedule_id.strip() else ""
        return page(request, "schedules.html", exc.http_status, schedules=schedules,
                    workflows=sorted(lf.engine.registry.names()),
                    problem=f"{which}{exc.code}: {exc}",
                    entered=form if action == "create" else {},
                    editing=form if action == "update" else {})
    return RedirectResponse(f"/ui/schedules?{urlencode({'notice': notice})}", status_code=303)
