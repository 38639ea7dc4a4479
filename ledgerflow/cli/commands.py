"""`ledgerflow trigger|signal|event|token|cancel|rerun|resume|worker`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ledgerflow._app import Ledgerflow
from ledgerflow.cli.common import console
from ledgerflow.cli.support import open_app, parse_json, user_errors
from ledgerflow.domain.errors import InvalidRequest
from ledgerflow.observability.logs import configure_logging
from ledgerflow.observability.metrics import serve_metrics
from ledgerflow.projections import queries

Payload = Annotated[str | None, typer.Option("--payload", help="JSON payload.")]
InputOpt = Annotated[str | None, typer.Option("--input", help="JSON input.")]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable).")]
Actor = Annotated[str | None, typer.Option("--actor", help="Who does this (audit metadata).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")]


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
    if as_json and record is not None:
        console.print_json(data=record.to_wire())
    else:
        status = record.status if record else "?"
        console.print(f"{verb} run {run_id} ({status})", highlight=False)


def trigger(
    ctx: typer.Context,
    workflow_id: Annotated[str, typer.Argument(help="The workflow to run.")],
    input: InputOpt = None,
    version: Annotated[str | None, typer.Option(help="Workflow version (default latest).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant id (tenantMeta.tenantId).")] = None,
    tags: Tags = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Use this run id.")] = None,
    key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    priority: Annotated[int, typer.Option(min=-(2**31), max=2**31 - 1, help=(
        "Higher is claimed first by the workers (default 0)."))] = 0,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the run to finish "
                                        "(needs a worker running).")] = 0.0,
    as_json: JsonFlag = False,
) -> None:
    """Start a run of a workflow; prints its id."""
    data = parse_json(input, "--input")

    def action(lf: Ledgerflow) -> None:
        result = lf.engine.trigger(workflow_id, data, workflow_version=version,
                                   tenant_meta={"tenantId": tenant} if tenant else None,
                                   tags=tags, run_id=run_id, idempotency_key=key,
                                   priority=priority)
        if wait > 0:
            _wait_terminal(lf, result.run_id, wait)
        _report(lf, result.run_id, "triggered" if result.created else "existing", as_json)

    _with_app(ctx, action)


def _wait_terminal(lf: Ledgerflow, run_id: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not lf.engine.state(run_id).is_terminal:
        time.sleep(0.1)


def signal(ctx: typer.Context, run_id: str, name: str, payload: Payload = None,
           actor: Actor = None, as_json: JsonFlag = False) -> None:
    """Send signal NAME to a run (buffered until the run waits for it)."""
    _deliver(ctx, run_id, payload, as_json, f"signal {name!r} sent to",
             lambda lf, data: lf.engine.signal(run_id, name, data, actor=actor))


def event(ctx: typer.Context, run_id: str, event_type: str, payload: Payload = None,
          actor: Actor = None, as_json: JsonFlag = False) -> None:
    """Deliver an external event of EVENT_TYPE to a run."""
    _deliver(ctx, run_id, payload, as_json, f"event {event_type!r} sent to",
             lambda lf, data: lf.engine.send_event(run_id, event_type, data, actor=actor))


def token(ctx: typer.Context, run_id: str, token_id: str, payload: Payload = None,
          actor: Actor = None, as_json: JsonFlag = False) -> None:
    """Resolve the token a run waits on (its waitpoint's tokenId)."""
    _deliver(ctx, run_id, payload, as_json, "token resolved for",
             lambda lf, data: lf.engine.resolve_token(run_id, token_id, data, actor=actor))


def _deliver(ctx: typer.Context, run_id: str, payload: str | None, as_json: bool, done: str,
             send: Callable[[Ledgerflow, Any], None]) -> None:
    """Parse `--payload`, send it to the run, report the run afterwards."""
    data = parse_json(payload, "--payload")

    def action(lf: Ledgerflow) -> None:
        send(lf, data)
        _report(lf, run_id, done, as_json)

    _with_app(ctx, action)


def cancel(ctx: typer.Context, run_id: str,
           reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
           compensate: Annotated[bool, typer.Option(
               "--compensate", help="Undo the completed steps first (their compensators "
               "run on a worker, then the run is canceled).")] = False,
           actor: Actor = None, as_json: JsonFlag = False) -> None:
    """Cancel a run that has not finished."""
    def action(lf: Ledgerflow) -> None:
        lf.engine.cancel(run_id, reason, compensate=compensate, actor=actor)
        _report(lf, run_id, "cancel requested for" if compensate else "canceled", as_json)

    _with_app(ctx, action)


def rerun(ctx: typer.Context, run_id: str, input: InputOpt = None, tags: Tags = None,
          actor: Actor = None, as_json: JsonFlag = False) -> None:
    """Start a new run of the same workflow with the same (or the given) input."""
    options: dict[str, Any] = {"tags": tags, "actor": actor}
    if input is not None:
        options["input"] = parse_json(input, "--input")

    def action(lf: Ledgerflow) -> None:
        new_id = lf.engine.rerun(run_id, **options)
        _report(lf, new_id, f"rerun of {run_id}:", as_json)

    _with_app(ctx, action)


def resume(
    ctx: typer.Context, run_id: str,
    from_step: Annotated[str | None, typer.Option("--from-step",
                                                  help="Re-execute from this step.")] = None,
    seed: Annotated[str | None, typer.Option("--seed", help="JSON {stepId: result}.")] = None,
    input: InputOpt = None,
    workflow: Annotated[str | None, typer.Option("--workflow")] = None,
    new_run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    tags: Tags = None, actor: Actor = None, as_json: JsonFlag = False,
) -> None:
    """Start a new run linked to a failed one, reusing its step results."""
    seeds = parse_json(seed, "--seed")
    if seeds is not None and not isinstance(seeds, dict):
        raise typer.BadParameter("--seed must be a JSON object {stepId: result}")
    data = parse_json(input, "--input")

    def action(lf: Ledgerflow) -> None:
        new_id = lf.engine.resume(run_id, input=data, workflow_id=workflow,
                                  resume_from_step=from_step, seed_results=seeds,
                                  new_run_id=new_run_id, tags=tags, actor=actor)
        _report(lf, new_id, f"resumed {run_id} as", as_json)

    _with_app(ctx, action)


def worker(
    ctx: typer.Context,
    threads: Annotated[int, typer.Option(min=1, help="Worker threads.")] = 4,
    poll_interval: Annotated[float, typer.Option(min=0.01)] = 0.5,
    metrics_port: Annotated[int, typer.Option(min=0, max=65535, help="Serve GET /metrics "
                                              "on this port (0: do not).")] = 0,
) -> None:
    """Execute due runs until SIGTERM/SIGINT (finishes the step in hand)."""
    def action(lf: Ledgerflow) -> None:
        configure_logging(lf.settings)
        if metrics_port and lf.metrics is not None:
            serve_metrics(lf.metrics, metrics_port)
        if not lf.engine.registry.names():
            raise InvalidRequest("no workflows are registered: pass --workflows MODULE "
                                 "or set LEDGERFLOW_WORKFLOWS")
        w = lf.worker(threads, poll_interval)
        w.install_signal_handlers()
        console.print(f"worker {lf.engine.worker_id}: {threads} thread(s), workflows "
                      f"{', '.join(lf.engine.registry.names())}", highlight=False)
        w.run()
        console.print("worker stopped")

    _with_app(ctx, action)


COMMANDS: dict[str, Callable[..., None]] = {
    "trigger": trigger, "signal": signal, "event": event, "token": token, "cancel": cancel,
    "rerun": rerun, "resume": resume, "worker": worker,
}
