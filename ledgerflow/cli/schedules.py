"""`ledgerflow schedules list|show|create|update|pause|resume|trigger|delete`.

They act on the database directly (as `trigger` does): `create` checks the workflow
against the workflows this command loads (`--workflows` / `LEDGERFLOW_WORKFLOWS`).
With `--server URL` they go through that server's API instead (which checks the
workflow against its own).
A `serve` or `worker` running anywhere on the database fires the schedules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from ledgerflow._app import Ledgerflow
from ledgerflow.cli.common import console, new_app
from ledgerflow.cli.remote import client_of, server_of
from ledgerflow.cli.support import open_app, parse_json, user_errors
from ledgerflow.client import Client
from ledgerflow.client._calls import ScheduleOptions
from ledgerflow.domain.schedules import DEFAULT_CATCHUP_SECONDS, OVERLAPS, ScheduleSpec
from ledgerflow.runtime.schedules import ScheduleRecord, Schedules

app = new_app("Schedules: runs started on a cron expression or every N seconds.")

ScheduleIdArg = Annotated[str, typer.Argument(metavar="SCHEDULE_ID",
                                              help="The schedule's id.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ACTOR = "cli"


def _with(ctx: typer.Context, action: Callable[[Schedules], Any],
          remote: Callable[[Client], Any]) -> Any:
    """`remote` through the server's API with `--server`, else `action` on the database."""
    if server_of(ctx) is not None:
        with user_errors(), client_of(ctx) as client:
            return remote(client)
    with user_errors():
        lf: Ledgerflow = open_app(ctx)
        try:
            assert lf.schedules is not None
            return action(lf.schedules)
        finally:
            lf.close()


def _when(record: ScheduleRecord) -> str:
    if record.cron is not None:
        return f"{record.cron} {record.timezone}"
    return f"every {record.every_seconds}s"


def _show(record: ScheduleRecord, as_json: bool) -> None:
    if as_json:
        console.print_json(data=record.to_wire())
        return
    state = "paused" if record.paused else "active"
    following = record.next_fire_times[0].isoformat() if record.next_fire_times else "-"
    console.print(f"schedule {record.schedule_id}: {record.workflow_id}, {_when(record)}, "
                  f"{state}, next {following}", highlight=False, markup=False, soft_wrap=True)


@app.command("list")
def list_command(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option(
        "--workflow", metavar="WORKFLOW", help="Only the schedules of this workflow.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the schedules with their next fire time (UTC; --json: the next five)."""
    records: list[ScheduleRecord] = _with(ctx, lambda s: s.list_schedules(workflow),
                                          lambda c: c.schedules(workflow))
    if as_json:
        console.print_json(data={"data": [r.to_wire() for r in records], "nextCursor": None})
        return
    if not records:
        console.print("no schedules")
        return
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False)
    for header in ("schedule", "workflow", "when", "state", "next fire (UTC)", "runs"):
        table.add_column(header, no_wrap=header != "when", overflow="fold")
    for r in records:
        table.add_row(r.schedule_id, r.workflow_id, _when(r),
                      "paused" if r.paused else "active",
                      r.next_fire_times[0].strftime("%Y-%m-%d %H:%M:%S")
                      if r.next_fire_times else "-", str(r.fired))
    console.print(table)


@app.command("show")
def show_command(ctx: typer.Context, schedule_id: ScheduleIdArg, as_json: JsonFlag = False,
                 ) -> None:
    """Show one schedule (with --json, its latest events too)."""
    _show(_with(ctx, lambda s: s.get(schedule_id, history=100 if as_json else 0),
                lambda c: c.schedule(schedule_id)), as_json)


WorkflowOpt = Annotated[str, typer.Option(
    "--workflow", metavar="WORKFLOW", help="The workflow each fire starts a run of.")]
CronOpt = Annotated[str | None, typer.Option(
    "--cron", metavar="EXPRESSION", help="A cron expression (minute hour day month "
    "weekday), read in --timezone.")]
EveryOpt = Annotated[int | None, typer.Option(
    "--every", min=1, metavar="SECONDS", help="Fire every SECONDS seconds instead.")]
TimezoneOpt = Annotated[str, typer.Option(
    "--timezone", metavar="ZONE", help="The cron expression's time zone (IANA name).")]
InputOpt = Annotated[str | None, typer.Option(
    "--input", metavar="JSON", help="The runs' input, as JSON.")]
OverlapOpt = Annotated[str, typer.Option(
    "--overlap", metavar="POLICY", help=f"While the previous run goes: {' | '.join(OVERLAPS)}.")]
CatchupOpt = Annotated[int, typer.Option(
    "--catchup-window", min=0, metavar="SECONDS", help="Fires missed for longer than this "
    "(nothing ran) are skipped.")]


def _spec(workflow: str, cron: str | None, every: int | None, timezone: str,
          input: str | None, overlap: str, catchup: int) -> ScheduleSpec:
    if overlap not in OVERLAPS:
        raise typer.BadParameter(f"--overlap must be one of {', '.join(OVERLAPS)}")
    return ScheduleSpec(workflow_id=workflow, input=parse_json(input, "--input"), cron=cron,
                        every_seconds=every, timezone=timezone, overlap=overlap,
                        catchup_window_seconds=catchup)


def _options(spec: ScheduleSpec, paused: bool | None = None) -> ScheduleOptions:
    """`spec` (and `paused`, for a create) as the client's keyword arguments."""
    options: ScheduleOptions = {"timezone": spec.timezone, "overlap": spec.overlap,
                                "catchup_window_seconds": spec.catchup_window_seconds}
    if paused is not None:
        options["paused"] = paused
    if spec.cron is not None:
        options["cron"] = spec.cron
    if spec.every_seconds is not None:
        options["every_seconds"] = spec.every_seconds
    return options


@app.command("create")
def create_command(ctx: typer.Context, schedule_id: ScheduleIdArg, workflow: WorkflowOpt,
                   cron: CronOpt = None, every: EveryOpt = None, timezone: TimezoneOpt = "UTC",
                   input: InputOpt = None, overlap: OverlapOpt = "skip",
                   catchup: CatchupOpt = DEFAULT_CATCHUP_SECONDS,
                   paused: Annotated[bool, typer.Option(
                       "--paused", help="Create it paused.")] = False,
                   as_json: JsonFlag = False) -> None:
    """Create a schedule (the same one again changes nothing)."""
    spec = _spec(workflow, cron, every, timezone, input, overlap, catchup)
    _show(_with(ctx, lambda s: s.create(schedule_id, spec, paused=paused, actor=ACTOR)[0],
                lambda c: c.create_schedule(schedule_id, workflow, spec.input,
                                            **_options(spec, paused))), as_json)


@app.command("update")
def update_command(ctx: typer.Context, schedule_id: ScheduleIdArg, workflow: WorkflowOpt,
                   cron: CronOpt = None, every: EveryOpt = None, timezone: TimezoneOpt = "UTC",
                   input: InputOpt = None, overlap: OverlapOpt = "skip",
                   catchup: CatchupOpt = DEFAULT_CATCHUP_SECONDS,
                   as_json: JsonFlag = False) -> None:
    """Give a schedule a whole new spec (as `create` takes it); paused stays paused."""
    spec = _spec(workflow, cron, every, timezone, input, overlap, catchup)
    _show(_with(ctx, lambda s: s.update(schedule_id, spec, actor=ACTOR)[0],
                lambda c: c.update_schedule(schedule_id, workflow, spec.input,
                                            **_options(spec))), as_json)


@app.command("pause")
def pause_command(ctx: typer.Context, schedule_id: ScheduleIdArg) -> None:
    """Stop firing until resumed."""
    _show(_with(ctx, lambda s: s.pause(schedule_id, actor=ACTOR),
                lambda c: c.pause_schedule(schedule_id)), False)


@app.command("resume")
def resume_command(ctx: typer.Context, schedule_id: ScheduleIdArg) -> None:
    """Fire again from now on (fires while paused are not caught up)."""
    _show(_with(ctx, lambda s: s.resume(schedule_id, actor=ACTOR),
                lambda c: c.resume_schedule(schedule_id)), False)


@app.command("trigger")
def trigger_command(ctx: typer.Context, schedule_id: ScheduleIdArg) -> None:
    """Start a run now, paused or not; prints its id."""
    run_id = _with(ctx, lambda s: s.trigger(schedule_id, actor=ACTOR),
                   lambda c: c.trigger_schedule(schedule_id))
    console.print(run_id, highlight=False, markup=False, soft_wrap=True)


@app.command("delete")
def delete_command(ctx: typer.Context, schedule_id: ScheduleIdArg) -> None:
    """Delete the schedule: no more fires (its history stays in its stream)."""
    _with(ctx, lambda s: s.delete(schedule_id, actor=ACTOR),
          lambda c: c.delete_schedule(schedule_id))
    console.print(f"deleted schedule {schedule_id}", highlight=False, markup=False)
