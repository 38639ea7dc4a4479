"""`ledgerflow trigger|signal|event|token|cancel|rerun|resume`.

A run id argument is a run's whole id or a unique prefix of it (at least 6
characters), as the tables show them."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer

from ledgerflow._app import Ledgerflow
from ledgerflow.cli import remote
from ledgerflow.cli.common import console, err_console, error_text
from ledgerflow.cli.support import open_app, parse_json, resolve, user_errors
from ledgerflow.client import Client
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.projections import queries
from ledgerflow.runtime.debounce import Debounce

Payload = Annotated[str | None, typer.Option("--payload", metavar="JSON",
                                             help="The payload, as JSON (default null).")]
InputOpt = Annotated[str | None, typer.Option("--input", metavar="JSON",
                                              help="The run's input, as JSON.")]
Tags = Annotated[list[str] | None, typer.Option("--tag", metavar="TAG",
                                                help="Tag the run (repeatable).")]
Actor = Annotated[str | None, typer.Option("--actor", metavar="NAME",
                                           help="Who does this (kept in the audit metadata).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")]
RunIdArg = Annotated[str, typer.Argument(metavar="RUN_ID",
                                         help="The run's id, or a unique prefix of it.")]

WAIT_TIMED_OUT = 3
"""`trigger --wait`'s exit code when the run has not finished by `--timeout`."""


def _remote(ctx: typer.Context, action: Callable[[Client], Any]) -> Any:
    """Run `action` on a client of the `--server` (see `cli.remote`)."""
    with user_errors(), remote.client_of(ctx) as client:
        return action(client)


def _with_app(ctx: typer.Context, action: Callable[[Ledgerflow], Any]) -> Any:
    with user_errors():
        lf = open_app(ctx)
        try:
            return action(lf)
        finally:
            lf.close()


def _report(lf: Ledgerflow, run_id: str, verb: str, as_json: bool) -> None:
    with lf.db.connect() as conn:
        record = queries.get_run(conn, run_id)
    show_run(record, run_id, verb, as_json)


def show_run(record: queries.RunRecord | None, run_id: str, verb: str, as_json: bool) -> None:
    """What a command prints about the run it acted on: `VERB run ID (status)`, or the
    run record as JSON."""
    if as_json and record is not None:
        console.print_json(data=record.to_wire())
    else:
        status = record.status if record else "?"
        console.print(f"{verb} run {run_id} ({status})", highlight=False, markup=False)


def trigger(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW",
                                               help="The workflow to run.")],
    input: InputOpt = None,
    version: Annotated[str | None, typer.Option(
        metavar="VERSION", help="The workflow's version (default: the latest).")] = None,
    tenant: Annotated[str | None, typer.Option(
        metavar="TENANT", help="The run's tenant (tenantMeta.tenantId).")] = None,
    tags: Tags = None,
    run_id: Annotated[str | None, typer.Option(
        "--run-id", metavar="ID", help="The new run's id (default: a random UUID); an "
        "existing run with this id is shown instead.")] = None,
    key: Annotated[str | None, typer.Option(
        "--idempotency-key", metavar="KEY", help="Run at most once per KEY: a repeat "
        "with the same content shows the first run.")] = None,
    priority: Annotated[int, typer.Option(min=-(2**31), max=2**31 - 1, metavar="N", help=(
        "Higher is claimed first by the workers (default 0)."))] = 0,
    queue: Annotated[str | None, typer.Option(
        metavar="QUEUE", help="The queue the run waits in (default: the workflow's).")] = None,
    concurrency_key: Annotated[str | None, typer.Option(
        metavar="KEY", help="The run's concurrency key (its queue's per-key limit counts "
        "it).")] = None,
    start_at: Annotated[datetime | None, typer.Option(
        metavar="TIME", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
        help="Not before this time, ISO 8601 with an offset "
        "(2030-01-01T09:00:00+00:00).")] = None,
    debounce: Annotated[str | None, typer.Option(
        metavar="KEY", help="Debounce: triggers with KEY less than --debounce-seconds "
        "apart become one run, started with the last input once they stop.")] = None,
    debounce_seconds: Annotated[float, typer.Option(
        min=0, metavar="SECONDS", help="The window of --debounce (default 5).")] = 5.0,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait until the run finishes (a worker must be running). Exit 0: "
        "completed; 1: failed or canceled; 3: not finished within --timeout.")] = False,
    timeout: Annotated[float, typer.Option(
        min=0, metavar="SECONDS", help="How long --wait waits.")] = 60.0,
    as_json: JsonFlag = False,
) -> None:
    """Start a run of a workflow; prints its id."""
    data = parse_json(input, "--input")
    if remote.server_of(ctx) is not None:
        options = {"workflow_version": version, "run_id": run_id, "tags": tags,
                   "tenant_meta": {"tenantId": tenant} if tenant else None,
                   "priority": priority, "idempotency_key": key, "queue": queue,
                   "concurrency_key": concurrency_key, "start_at": start_at,
                   "debounce": None if debounce is None else (debounce, debounce_seconds)}
        record, created, _ = _remote(ctx, lambda client: remote.trigger(
            client, workflow_id, data, options, timeout if wait else None))
        show_run(record, record.run_id, "triggered" if created else "existing", as_json)
        if wait and (code := wait_outcome(record, timeout, as_json)):
            raise typer.Exit(code)
        return

    def action(lf: Ledgerflow) -> int:
        result = lf.engine.trigger(workflow_id, data, workflow_version=version,
                                   tenant_meta={"tenantId": tenant} if tenant else None,
                                   tags=tags, run_id=run_id, idempotency_key=key,
                                   priority=priority, queue=queue,
                                   concurrency_key=concurrency_key, start_at=start_at,
                                   debounce=None if debounce is None
                                   else Debounce(debounce, debounce_seconds))
        if wait:
            _wait_terminal(lf, result.run_id, timeout)
        _report(lf, result.run_id, "triggered" if result.created else "existing", as_json)
        return _outcome(lf, result.run_id, timeout, as_json) if wait else 0

    code = _with_app(ctx, action)
    if code:
        raise typer.Exit(code)


def _wait_terminal(lf: Ledgerflow, run_id: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not lf.engine.state(run_id).is_terminal:
        time.sleep(0.1)


def _outcome(lf: Ledgerflow, run_id: str, waited: float, as_json: bool) -> int:
    with lf.db.connect() as conn:
        record = queries.get_run(conn, run_id)
    assert record is not None
    return wait_outcome(record, waited, as_json)


def wait_outcome(record: queries.RunRecord, waited: float, as_json: bool) -> int:
    """How a `trigger --wait` ends: the exit code, and the result or what went wrong."""
    run_id = record.run_id
    if record.status is RunStatus.COMPLETED:
        if not as_json:
            console.print_json(data=record.result)
        return 0
    if record.status in (RunStatus.FAILED, RunStatus.CANCELED):
        reason = f": {error_text(record.error)}" if record.error else ""
        err_console.print(f"run {run_id} {record.status.value}{reason}", highlight=False,
                          soft_wrap=True, markup=False)
        return 1
    wp = record.waitpoint
    hint = f" (it waits for {wp['kind']} {wp['name']!r})" if wp else ""
    if record.status is RunStatus.PENDING:
        hint = "; no worker may be running (start one with `ledgerflow worker`)"
    err_console.print(f"run {run_id} is still {record.status.value} after {waited:g}s{hint}",
                      highlight=False, soft_wrap=True, markup=False)
    return WAIT_TIMED_OUT


def signal(ctx: typer.Context, run_id: RunIdArg,
           name: Annotated[str, typer.Argument(
               metavar="NAME", help="The signal's name, as the workflow waits for it.")],
           payload: Payload = None, actor: Actor = None, as_json: JsonFlag = False) -> None:
    """Send signal NAME to a run. A run not waiting for it keeps it until it does, and
    the command says what the run waits for instead."""
    _deliver(ctx, run_id, payload, as_json, f"signal {name!r} sent to",
             lambda lf, rid, data: lf.engine.signal(rid, name, data, actor=actor),
             lambda client, data: client.signal(run_id, name, data))


def event(ctx: typer.Context, run_id: RunIdArg,
          event_type: Annotated[str, typer.Argument(
              metavar="EVENT_TYPE", help="The event's type, as the workflow waits for it.")],
          payload: Payload = None, actor: Actor = None, as_json: JsonFlag = False) -> None:
    """Deliver an external event to a run. A run not waiting for it keeps it until it
    does."""
    _deliver(ctx, run_id, payload, as_json, f"event {event_type!r} sent to",
             lambda lf, rid, data: lf.engine.send_event(rid, event_type, data, actor=actor),
             lambda client, data: client.event(run_id, event_type, data))


def token(ctx: typer.Context, run_id: RunIdArg,
          token_id: Annotated[str, typer.Argument(
              metavar="TOKEN_ID", help="The token's id (`runs show` shows the run's).")],
          payload: Payload = None, actor: Actor = None, as_json: JsonFlag = False) -> None:
    """Resolve the token a run waits on (its waitpoint's tokenId)."""
    _deliver(ctx, run_id, payload, as_json, "token resolved for",
             lambda lf, rid, data: lf.engine.resolve_token(rid, token_id, data, actor=actor),
             lambda client, data: client.token(run_id, token_id, data))


def _deliver(ctx: typer.Context, run_id: str, payload: str | None, as_json: bool, done: str,
             send: Callable[[Ledgerflow, str, Any], bool | None],
             post: Callable[[Client, Any], queries.RunRecord]) -> None:
    """Parse `--payload`, send it to the run (`post` it with `--server`), report the run
    afterwards (and when the run kept it for later, what the run waits for instead)."""
    data = parse_json(payload, "--payload")
    if remote.server_of(ctx) is not None:
        record, kept = _remote(ctx, lambda client: remote.deliver(
            client, lambda c: post(c, data)))
        show_run(record, record.run_id, done, as_json)
        if kept and not done.startswith("token"):
            show_buffered(record, as_json)
        return

    def action(lf: Ledgerflow) -> None:
        rid = resolve(lf, run_id)
        woke = send(lf, rid, data)
        _report(lf, rid, done, as_json)
        if woke is False:
            _buffered(lf, rid, as_json)

    _with_app(ctx, action)


def _buffered(lf: Ledgerflow, run_id: str, as_json: bool) -> None:
    with lf.db.connect() as conn:
        record = queries.get_run(conn, run_id)
    show_buffered(record, as_json)


def show_buffered(record: queries.RunRecord | None, as_json: bool) -> None:
    """A signal or event the run keeps for later: what it waits for instead."""
    wp = record.waitpoint if record is not None else None
    status = record.status.value if record is not None else "?"
    line = f"buffered: run waits for {wp['kind']} {wp['name']!r}" if wp \
        else f"buffered: run is {status}, not waiting; it gets it when it waits for it"
    (err_console if as_json else console).print(line, highlight=False, markup=False)


def cancel(ctx: typer.Context, run_id: RunIdArg,
           reason: Annotated[str | None, typer.Option(
               metavar="TEXT", help="Why (kept in the run's history).")] = None,
           compensate: Annotated[bool, typer.Option(
               "--compensate", help="Undo the completed steps first (their compensators "
               "run on a worker, then the run is canceled).")] = False,
           actor: Actor = None, as_json: JsonFlag = False) -> None:
    """Cancel a run that has not finished. Its unfinished children are canceled too."""
    if remote.server_of(ctx) is not None:
        record = _remote(ctx, lambda client: client.cancel(run_id, reason,
                                                           compensate=compensate))
        show_run(record, record.run_id, "cancel requested for" if compensate else "canceled",
                 as_json)
        return

    def action(lf: Ledgerflow) -> None:
        rid = resolve(lf, run_id)
        lf.engine.cancel(rid, reason, compensate=compensate, actor=actor)
        _report(lf, rid, "cancel requested for" if compensate else "canceled", as_json)

    _with_app(ctx, action)


def rerun(ctx: typer.Context, run_id: RunIdArg, input: InputOpt = None, tags: Tags = None,
          actor: Actor = None,
          yes: Annotated[bool, typer.Option(
              "--yes", help="Confirm the rerun of a workflow declared "
              "rerun_safety=\"unsafe\" (its side effects happen again).")] = False,
          as_json: JsonFlag = False) -> None:
    """Run a run's workflow again as a new run. Same input unless --input is given."""
    options: dict[str, Any] = {"tags": tags, "confirm": yes}
    if input is not None:
        options["input"] = parse_json(input, "--input")
    if remote.server_of(ctx) is not None:
        record = _remote(ctx, lambda client: client.rerun(run_id, **options))
        show_run(record, record.run_id, f"rerun of {record.rerun_of}:", as_json)
        return
    options["actor"] = actor

    def action(lf: Ledgerflow) -> None:
        rid = resolve(lf, run_id)
        new_id = lf.engine.rerun(rid, **options)
        _report(lf, new_id, f"rerun of {rid}:", as_json)

    _with_app(ctx, action)


def resume(
    ctx: typer.Context, run_id: RunIdArg,
    from_step: Annotated[str | None, typer.Option(
        "--from-step", metavar="STEP", help="Execute again from this step: the steps "
        "before it keep their results.")] = None,
    seed: Annotated[str | None, typer.Option(
        "--seed", metavar="JSON", help="Step results to start with, {stepId: result}.")]
    = None,
    input: InputOpt = None,
    workflow: Annotated[str | None, typer.Option(
        "--workflow", metavar="WORKFLOW", help="Run this workflow instead of the failed "
        "run's.")] = None,
    new_run_id: Annotated[str | None, typer.Option(
        "--run-id", metavar="ID", help="The new run's id (default: a random UUID).")] = None,
    tags: Tags = None, actor: Actor = None, as_json: JsonFlag = False,
) -> None:
    """Continue a failed run as a new run. It reuses the failed run's step results."""
    seeds = parse_json(seed, "--seed")
    if seeds is not None and not isinstance(seeds, dict):
        raise typer.BadParameter("--seed must be a JSON object {stepId: result}")
    data = parse_json(input, "--input")
    if remote.server_of(ctx) is not None:
        record = _remote(ctx, lambda client: client.resume(
            run_id, input=data, workflow_id=workflow, resume_from_step=from_step,
            seed_results=seeds, new_run_id=new_run_id, tags=tags, actor=actor))
        show_run(record, record.run_id, f"resumed {record.resumed_from} as", as_json)
        return

    def action(lf: Ledgerflow) -> None:
        rid = resolve(lf, run_id)
        new_id = lf.engine.resume(rid, input=data, workflow_id=workflow,
                                  resume_from_step=from_step, seed_results=seeds,
                                  new_run_id=new_run_id, tags=tags, actor=actor)
        _report(lf, new_id, f"resumed {rid} as", as_json)

    _with_app(ctx, action)


COMMANDS: dict[str, Callable[..., None]] = {
    "trigger": trigger, "signal": signal, "event": event, "token": token, "cancel": cancel,
    "rerun": rerun, "resume": resume,
}
