"""Routes under `/api/runs`: trigger, list, read, and the commands on one run.

Routes are plain `def`s (FastAPI runs them on its thread pool): the engine and
the queries are synchronous SQLAlchemy. Reads go to the inline projections, which
commit with the events, so a client reads its own writes.

`{id}` in a path is a run's id or a unique prefix of it (at least 6 characters, as
the CLI's tables show them; `queries.resolve_run_id`): the route acts on the run it
names. A prefix several runs start with answers 409 `ambiguous_run_id` with the
candidates in `details.candidates` (409, not 404: the runs exist, the request is
what is unclear); no match, or only other tenants' runs, answers 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection

from ledgerflow._app import Ledgerflow
from ledgerflow.api._errors import ApiError, json_response
from ledgerflow.api._gate import Principal, principal
from ledgerflow.api._idempotency import Outcome, RequestKey
from ledgerflow.api._models import (
    MAX_ID,
    CancelRequest,
    ErrorBody,
    EventRequest,
    HistoryPage,
    JournalPage,
    Name,
    RerunRequest,
    ResumeRequest,
    RunOut,
    RunPage,
    SignalRequest,
    Status,
    TokenRequest,
    TriggerRequest,
)
from ledgerflow.domain.errors import RunConflict, UnknownRun
from ledgerflow.history import AuditReport, audit_run
from ledgerflow.projections import queries
from ledgerflow.runtime.debounce import Debounce
from ledgerflow.runtime.engine import TriggerResult

_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
PathId = Annotated[str, Path(alias="id", min_length=1, max_length=MAX_ID, pattern=_ID_PATTERN,
                             description="The run's id, or a unique prefix of it (at least "
                             "6 characters).")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=MAX_ID,
                                       pattern=_ID_PATTERN)]
Caller = Annotated[Principal, Depends(principal)]


def ledgerflow(request: Request) -> Ledgerflow:
    """The composition root `create_app` was given."""
    lf: Ledgerflow = request.app.state.ledgerflow
    return lf


App = Annotated[Ledgerflow, Depends(ledgerflow)]


def visible_run_id(run_id: PathId, lf: App, who: Caller) -> str:
    """The whole id of the run `{id}` names, if the caller may see it (404 otherwise;
    409 for an ambiguous prefix)."""
    with lf.db.connect() as conn:
        return queries.resolve_run_id(conn, run_id, tenant_id=who.tenant)


RunId = Annotated[str, Depends(visible_run_id)]
"""A path's run, resolved: its whole id (the caller may see it)."""


def visible_run(lf: Ledgerflow, who: Principal, run_id: str) -> queries.RunRecord:
    """The record of the run `run_id` names (its id or a unique prefix) if the caller
    may see it; 404 otherwise, 409 for an ambiguous prefix."""
    with lf.db.connect() as conn:
        return queries.find_run(conn, run_id, tenant_id=who.tenant)


def listed_tenant(who: Principal, tenant_id: str | None) -> str | None:
    """The tenant a list by `who` is restricted to, asked for `tenant_id` (None: any):
    a tenant-bound token lists its own tenant only (403 for another)."""
    if who.tenant is not None and tenant_id not in (None, who.tenant):
        raise ApiError(403, "forbidden", f"this token is bound to tenant {who.tenant!r} and "
                       f"cannot list tenant {tenant_id!r}", {"tenantId": tenant_id})
    return who.tenant or tenant_id


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    common = (401, 413, 422)
    return {c: {"model": ErrorBody} for c in sorted({*codes, *common})}


router = APIRouter(prefix="/api/runs", tags=["runs"])


def _visible(conn: Connection, who: Principal, run_id: str) -> queries.RunRecord:
    record = queries.get_run(conn, run_id, tenant_id=who.tenant)
    if record is None:
        raise UnknownRun(run_id)
    return record


def _stored(lf: Ledgerflow, run_id: str) -> bool:
    """Whether this store has run `run_id` (whatever its tenant)."""
    with lf.db.connect() as conn:
        return queries.get_run(conn, run_id) is not None


def _run_of(response: Outcome) -> TriggerResult:
    """A replayed trigger, rerun or resume: the run its remembered response shows."""
    return TriggerResult(str(response[1]["id"]), False)


def _nothing(_response: Outcome) -> None:
    """A replayed command on a run (its outcome is None)."""


def _stamp_tenant(who: Principal, meta: dict[str, Any] | None) -> dict[str, Any] | None:
    if who.tenant is None:
        return meta
    meta = dict(meta or {})
    asked = meta.setdefault("tenantId", who.tenant)
    if asked != who.tenant:
        raise ApiError(403, "forbidden",
                       f"this token is bound to tenant {who.tenant!r} and cannot trigger runs "
                       f"for tenant {asked!r}", {"tenantId": asked})
    return meta


@router.post("", status_code=201, response_model=RunOut, responses=_errors(403, 404, 409),
             summary="Trigger a run (200 when runId names an existing run with the same "
             "workflow and input; 409 with another)")
def trigger(body: TriggerRequest, request: Request, lf: App, who: Caller,
            idempotency_key: IdemKey = None) -> Response:
    def respond(conn: Connection, result: TriggerResult) -> Outcome:
        # A new run is shown as of the trigger's commit, from its own events (no read).
        record = queries.record_from_events(result.run_id, result.recorded)
        if record is None:
            record = queries.get_run(conn, result.run_id, tenant_id=who.tenant)
        if record is None:
            raise ApiError(409, "run_id_taken", f"run id {result.run_id!r} is already in use",
                           {"runId": result.run_id})
        return (201 if result.created else 200), record.to_wire()

    def conflict(kept: Outcome) -> RunConflict:
        return RunConflict(str(kept[1]["id"]), key=idempotency_key)

    call = RequestKey(lf.db, request, who, idempotency_key, {}, body, respond, _run_of,
                      conflict)
    result = lf.engine.trigger(
        body.workflow_id, body.input, workflow_version=body.workflow_version,
        tenant_meta=_stamp_tenant(who, body.tenant_meta), tags=body.tags,
        run_id=body.run_id, priority=body.priority, idempotency_key=call.key,
        queue=body.queue, concurrency_key=body.concurrency_key, start_at=body.start_at,
        debounce=None if body.debounce is None else Debounce(body.debounce.key,
                                                             body.debounce.seconds))
    return call.response(result)


@router.get("", response_model=RunPage, responses=_errors(403))
def list_runs(
    lf: App, who: Caller, status: Status | None = None,
    workflow_id: Annotated[Name | None, Query(alias="workflowId")] = None,
    tenant_id: Annotated[Name | None, Query(alias="tenantId")] = None,
    tag: Name | None = None,
    parent_run_id: Annotated[Name | None, Query(alias="parentRunId")] = None,
    resumed_from: Annotated[Name | None, Query(alias="resumedFrom")] = None,
    rerun_of: Annotated[Name | None, Query(alias="rerunOf")] = None,
    compensation: queries.Compensation | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000, pattern=_ID_PATTERN)] = None,
) -> Response:
    """Runs newest first; `nextCursor` pages on. `resumedFrom` / `rerunOf`: the runs
    that resumed / reran that run; `compensation`: failed runs by how their rollback
    ended."""
    with lf.db.connect() as conn:
        records, next_cursor = queries.list_runs(
            conn, status=status, workflow_id=workflow_id, tenant_id=listed_tenant(who, tenant_id),
            tag=tag, parent_run_id=parent_run_id, resumed_from=resumed_from,
            rerun_of=rerun_of, compensation=compensation, limit=limit, cursor=cursor)
    return json_response(200, RunPage(records, next_cursor).wire_values())


@router.get("/{id}", response_model=RunOut, responses=_errors(404, 409))
def get_run(run_id: PathId, lf: App, who: Caller) -> Response:
    """The run record."""
    return json_response(200, visible_run(lf, who, run_id).wire_values())  # one query


@router.get("/{id}/history", response_model=HistoryPage, responses=_errors(404, 409))
def get_history(run_id: RunId, lf: App, who: Caller) -> Response:
    """Every event of the run, in order, with its metadata (the audit trail)."""
    return json_response(200, HistoryPage(queries.history(lf.store, run_id)).wire_values())


@router.get("/{id}/audit", response_model=AuditReport, responses=_errors(404, 409))
def get_audit(run_id: RunId, lf: App) -> Response:
    """Whether the run's stored history still hashes to its chain; else the first
    version that does not (`firstBadVersion`) and why (`reason`)."""
    with lf.db.connect() as conn:
        report = audit_run(lf.store, conn, run_id)
    return json_response(200, report.wire_values())


@router.get("/{id}/journal", response_model=JournalPage, responses=_errors(404, 409))
def get_journal(run_id: RunId, lf: App) -> Response:
    """The run's step journal, in the order the steps first ran."""
    with lf.db.connect() as conn:
        entries = queries.get_journal(conn, run_id)
    return json_response(200, JournalPage(entries).wire_values())


def _on_run(lf: Ledgerflow, request: Request, who: Principal, key: str | None,
            run_id: str, params: dict[str, Any], body: Any) -> RequestKey[None]:
    """The key of a command on run `run_id`, whose response is the run as it left it."""
    return RequestKey(lf.db, request, who, key, params, body,
                      lambda conn, _: (200, _visible(conn, who, run_id).to_wire()), _nothing)


def _new_run(lf: Ledgerflow, request: Request, who: Principal, key: str | None,
             run_id: str, body: Any) -> RequestKey[TriggerResult]:
    """The key of a rerun or resume of `run_id`, whose response is the new run (201)."""
    return RequestKey(lf.db, request, who, key, {"id": run_id}, body,
                      lambda conn, new: (201, _visible(conn, who, new.run_id).to_wire()),
                      _run_of)


@router.post("/{id}/signals", response_model=RunOut, responses=_errors(404, 409))
def send_signal(run_id: RunId, body: SignalRequest, request: Request, lf: App, who: Caller,
                idempotency_key: IdemKey = None) -> Response:
    """Deliver a signal (buffered if the run does not wait for it yet)."""
    call = _on_run(lf, request, who, idempotency_key, run_id, {"id": run_id}, body)
    lf.engine.signal(run_id, body.name, body.payload, idempotency_key=call.key)
    return call.response(None)


@router.post("/{id}/events", response_model=RunOut, responses=_errors(404, 409))
def send_event(run_id: RunId, body: EventRequest, request: Request, lf: App, who: Caller,
               idempotency_key: IdemKey = None) -> Response:
    """Deliver an external event (buffered if the run does not wait for it yet)."""
    call = _on_run(lf, request, who, idempotency_key, run_id, {"id": run_id}, body)
    lf.engine.send_event(run_id, body.event_type, body.payload, idempotency_key=call.key)
    return call.response(None)


@router.post("/{id}/tokens/{tokenId}", response_model=RunOut, responses=_errors(404, 409))
def resolve_token(
    run_id: RunId, token_id: Annotated[str, Path(alias="tokenId", max_length=MAX_ID,
                                                 pattern=_ID_PATTERN)],
    request: Request, lf: App, who: Caller, body: TokenRequest | None = None,
    idempotency_key: IdemKey = None,
) -> Response:
    """Resolve the token the run waits on (409 if it does not wait on it)."""
    call = _on_run(lf, request, who, idempotency_key, run_id,
                   {"id": run_id, "tokenId": token_id}, body)
    lf.engine.resolve_token(run_id, token_id, body.payload if body else None,
                            idempotency_key=call.key)
    return call.response(None)


@router.post("/{id}/cancel", response_model=RunOut, responses=_errors(404, 409))
def cancel(run_id: RunId, request: Request, lf: App, who: Caller,
           body: CancelRequest | None = None, idempotency_key: IdemKey = None) -> Response:
    """Cancel a run that has not finished (409 if it has). With `compensate`, a run
    with completed steps answers `compensating`: a worker runs their compensators, then
    the run is `canceled`."""
    call = _on_run(lf, request, who, idempotency_key, run_id, {"id": run_id}, body)
    lf.engine.cancel(run_id, body.reason if body else None,
                     compensate=body.compensate if body else False, idempotency_key=call.key)
    return call.response(None)


@router.post("/{id}/rerun", status_code=201, response_model=RunOut,
             responses=_errors(404, 409))
def rerun(run_id: RunId, request: Request, lf: App, who: Caller,
          body: RerunRequest | None = None, idempotency_key: IdemKey = None) -> Response:
    """A new run of the same workflow, with the same input unless one is given."""
    call = _new_run(lf, request, who, idempotency_key, run_id, body)
    options: dict[str, Any] = {"tags": body.tags if body else None,
                               "confirm": body.confirm if body else False}
    if body is not None and "input" in body.model_fields_set:
        options["input"] = body.input
    new_id = lf.engine.rerun(run_id, **options, idempotency_key=call.key)
    return call.response(TriggerResult(new_id, True))


@router.post("/{id}/resume", status_code=201, response_model=RunOut,
             responses=_errors(404, 409))
def resume(run_id: PathId, request: Request, lf: App, who: Caller,
           body: ResumeRequest | None = None, idempotency_key: IdemKey = None) -> Response:
    """A new run linked to a failed one, its journal seeded with earlier results. A
    parent that is not in this store (it ran elsewhere) is resumed when `workflowId`,
    `resumeFromStep` and `seedResults` are given: the new run's `resumedFrom` is that
    id (404 without them)."""
    b = body or ResumeRequest()
    elsewhere = None not in (b.workflow_id, b.resume_from_step, b.seed_results)
    try:
        run_id = visible_run_id(run_id, lf, who)
    except UnknownRun:
        if not elsewhere or _stored(lf, run_id):  # another tenant's run is not elsewhere
            raise
    call = _new_run(lf, request, who, idempotency_key, run_id, body)
    new_id = lf.engine.resume(
        run_id, input=b.input, workflow_id=b.workflow_id,
        resume_from_step=b.resume_from_step, seed_results=b.seed_results,
        new_run_id=b.run_id, tags=b.tags, actor=b.triggered_by_user_id,
        tenant_meta=_stamp_tenant(who, None), idempotency_key=call.key)
    return call.response(TriggerResult(new_id, True))
