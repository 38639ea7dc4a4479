"""Routes under `/api/schedules`: create, list, read, change, pause, resume, trigger,
delete.

A schedule is its stream `schedule:{id}` (`ledgerflow.runtime.schedules`); `GET
/api/schedules/{id}` shows its record with its latest events (`history`, the last
`HISTORY` of them, oldest first). Schedules belong to no tenant and start runs of
none: every route needs a token that sees every tenant (403 otherwise).

Bad input: an unknown workflow or schedule is 404; a bad cron expression or time
zone, both `cron` and `everySeconds` or neither, is 422 with a message saying what
is wrong; a `scheduleId` that names a live schedule with another spec is 409. A
create repeated with the same spec answers 200 with the schedule as it is.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from ledgerflow.api._errors import json_response
from ledgerflow.api._models import ScheduleChange, ScheduleRequest, ScheduleTriggered
from ledgerflow.api._runs import App, Caller, _errors
from ledgerflow.domain.schedules import MAX_SCHEDULE_ID, ScheduleSpec
from ledgerflow.domain.wire import Page
from ledgerflow.runtime.schedules import ScheduleRecord, Schedules

router = APIRouter(prefix="/api/schedules", tags=["schedules"])
HISTORY = 100
ScheduleId = Annotated[str, Path(alias="id", min_length=1, max_length=MAX_SCHEDULE_ID,
                                 pattern=r"^[^\x00-\x1f\x7f]+$",
                                 description="The schedule's id.")]
WHAT = "schedules"
ACTOR = "api"


def _schedules(lf: App) -> Schedules:
    assert lf.schedules is not None
    return lf.schedules


@router.post("", status_code=201, response_model=ScheduleRecord, responses=_errors(403, 404, 409))
def create_schedule(lf: App, who: Caller, body: ScheduleRequest) -> Response:
    """Create a schedule (201); the same one again answers 200 with it unchanged."""
    who.require_all(WHAT)
    record, created = _schedules(lf).create(body.schedule_id, spec_of(body),
                                            paused=body.paused, actor=ACTOR)
    return json_response(201 if created else 200, record.to_wire())


def spec_of(body: ScheduleChange) -> ScheduleSpec:
    return ScheduleSpec(workflow_id=body.workflow_id, input=body.input, cron=body.cron,
                        every_seconds=body.every_seconds, timezone=body.timezone,
                        overlap=body.overlap, catchup_window_seconds=body.catchup_window_seconds)


@router.put("/{id}", response_model=ScheduleRecord, responses=_errors(403, 404))
def update_schedule(lf: App, who: Caller, schedule_id: ScheduleId,
                    body: ScheduleChange) -> Response:
    """Give a live schedule a new spec (the whole spec, as `POST` takes it): its next
    fires follow it from the last fire on; paused stays paused. The same spec again
    changes nothing."""
    who.require_all(WHAT)
    record, _ = _schedules(lf).update(schedule_id, spec_of(body), actor=ACTOR)
    return json_response(200, record.to_wire())


@router.get("", response_model=Page[ScheduleRecord], responses=_errors(403))
def list_schedules(lf: App, who: Caller, workflow_id: Annotated[
        str | None, Query(alias="workflowId", min_length=1, max_length=200)] = None,
                   ) -> Response:
    """Every schedule (of a workflow), by id, with its next fire times."""
    who.require_all(WHAT)
    return json_response(200, Page(_schedules(lf).list_schedules(workflow_id)).to_wire())


@router.get("/{id}", response_model=ScheduleRecord, responses=_errors(403, 404))
def get_schedule(lf: App, who: Caller, schedule_id: ScheduleId) -> Response:
    """The schedule, its next fire times and its latest events (`history`)."""
    who.require_all(WHAT)
    return json_response(200, _schedules(lf).get(schedule_id, history=HISTORY).to_wire())


@router.delete("/{id}", status_code=204, responses=_errors(403, 404))
def delete_schedule(lf: App, who: Caller, schedule_id: ScheduleId) -> Response:
    """No more fires (its runs go on); its stream stays, ending with ScheduleDeleted."""
    who.require_all(WHAT)
    _schedules(lf).delete(schedule_id, actor=ACTOR)
    return Response(status_code=204)


@router.post("/{id}/pause", response_model=ScheduleRecord, responses=_errors(403, 404))
def pause_schedule(lf: App, who: Caller, schedule_id: ScheduleId) -> Response:
    """Stop firing until resumed."""
    who.require_all(WHAT)
    return json_response(200, _schedules(lf).pause(schedule_id, actor=ACTOR).to_wire())


@router.post("/{id}/resume", response_model=ScheduleRecord, responses=_errors(403, 404))
def resume_schedule(lf: App, who: Caller, schedule_id: ScheduleId) -> Response:
    """Fire again from now on (fires while paused are not caught up)."""
    who.require_all(WHAT)
    return json_response(200, _schedules(lf).resume(schedule_id, actor=ACTOR).to_wire())


@router.post("/{id}/trigger", status_code=201, response_model=ScheduleTriggered,
             responses=_errors(403, 404))
def trigger_schedule(lf: App, who: Caller, schedule_id: ScheduleId) -> Response:
    """Start a run now (paused or not, whatever the overlap policy)."""
    who.require_all(WHAT)
    run_id = _schedules(lf).trigger(schedule_id, actor=ACTOR)
    return json_response(201, {"scheduleId": schedule_id, "runId": run_id})
