"""`ledgerflow runs list|show|history`, and the renderers the demo reuses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, get_args

import typer
from rich.console import Console
from rich.table import Table

from ledgerflow.cli.common import console
from ledgerflow.cli.support import open_app, user_errors
from ledgerflow.domain.errors import UnknownRun
from ledgerflow.domain.wire import Page
from ledgerflow.projections import queries

app = typer.Typer(no_args_is_help=True, help="Inspect runs: list, show one, its history.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

_STATUS_STYLE = {"completed": "green", "failed": "red", "canceled": "yellow",
                 "compensating": "magenta", "suspended": "cyan", "running": "blue"}


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                             default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _status(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def runs_table(records: Sequence[queries.RunRecord], *, short_ids: bool = False) -> Table:
    """Runs as a table: id, workflow, status, what it waits for, parent, tenant, created."""
    table = Table("run id", "workflow", "status", "waiting for", "parent", "tenant", "created")
    for r in records:
        wp = r.waitpoint
        waiting = f"{wp['kind']} {wp['name']}" if wp else "-"
        run_id = r.run_id[:8] if short_ids else r.run_id
        table.add_row(run_id, f"{r.workflow_id}@{r.workflow_version}", _status(r.status),
                      waiting, (r.parent_run_id or "-")[:8], r.tenant_id or "-",
                      _when(r.created_at))
    return table


def _brief(entry: queries.HistoryEntry) -> str:
    data = {k: v for k, v in entry.data.items() if v not in (None, [], {}, "")}
    for noisy in ("started_at", "tenant_meta", "priority", "workflow_version"):
        data.pop(noisy, None)
    return _short(data, 70)


def history_table(entries: Sequence[queries.HistoryEntry], title: str | None = None) -> Table:
    """A run's history as a timeline: time, version, event type, short data."""
    table = Table("time", "v", "event", "data", title=title, title_justify="left")
    for e in entries:
        table.add_row(e.recorded_at.strftime("%H:%M:%S.%f")[:-3], str(e.version), e.type,
                      _brief(e))
    return table


def print_json(out: Console, value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def _one_of(choices: tuple[str, ...]) -> Any:
    """A typer callback that refuses a value not in `choices` (usage error, exit 2)."""
    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


@app.command("list")
def list_command(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="pending, running, suspended, "
                                               "compensating, completed, failed, canceled")] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", help="Workflow id.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant id.")] = None,
    tag: Annotated[str | None, typer.Option(help="Runs with this tag.")] = None,
    parent: Annotated[str | None, typer.Option(help="Children of this run.")] = None,
    resumed_from: Annotated[str | None, typer.Option(
        "--resumed-from", help="Runs that resumed this run.")] = None,
    rerun_of: Annotated[str | None, typer.Option(
        "--rerun-of", help="Reruns of this run.")] = None,
    compensation: Annotated[str | None, typer.Option(
        help="Failed runs whose rollback ended so: compensated, compensation_failed.",
        callback=_one_of(get_args(queries.Compensation)))] = None,
    limit: Annotated[int, typer.Option(min=1, max=queries.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, typer.Option(help="`nextCursor` of a previous page.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Runs, newest first, with filters."""
    with user_errors():
        lf = open_app(ctx)
        try:
            with lf.db.connect() as conn:
                records, next_cursor = queries.list_runs(
                    conn, status=status, workflow_id=workflow, tenant_id=tenant, tag=tag,
                    parent_run_id=parent, resumed_from=resumed_from, rerun_of=rerun_of,
                    compensation=compensation, limit=limit, cursor=cursor)
        finally:
            lf.close()
    if as_json:
        print_json(console, Page(records, next_cursor).to_wire())
        return
    if not records:
        console.print("no runs")
        return
    console.print(runs_table(records))
    if next_cursor:
        console.print(f"more: --cursor {next_cursor}")


@app.command("show")
def show_command(ctx: typer.Context, run_id: str, as_json: JsonFlag = False) -> None:
    """One run: status, input, result, error, what it waits for, its steps."""
    with user_errors():
        lf = open_app(ctx)
        try:
            with lf.db.connect() as conn:
                record = queries.get_run(conn, run_id)
                if record is None:
                    raise UnknownRun(run_id)
                journal = queries.get_journal(conn, run_id)
        finally:
            lf.close()
    wire = record.to_wire()
    if as_json:
        print_json(console, {**wire, "journal": [j.to_wire() for j in journal]})
        return
    table = Table(show_header=False, box=None)
    for key in ("id", "workflowId", "workflowVersion", "status", "input", "result", "error",
                "waitpoint", "wakeAt", "parentRunId", "children", "tags", "tenantMeta",
                "createdAt", "updatedAt", "version", "resumedFrom", "rerunOf",
                "compensation", "priority"):
        value = _untraced(wire[key]) if key == "error" else wire[key]
        table.add_row(key, _status(value) if key == "status" else _short(value, 100))
    console.print(table)
    if journal:
        steps = Table("step", "status", "attempt", "result / error")
        for j in journal:
            steps.add_row(j.step_id, _status(j.status), str(j.attempt),
                          _short(_untraced(j.error) if j.error else j.result))
        console.print(steps)
    _print_tracebacks([("run", record.error), *((f"step {j.step_id!r} attempt {j.attempt}",
                                                  j.error) for j in journal)])


def _untraced(error: Any) -> Any:
    """An error without its traceback (printed in full below the tables)."""
    if not isinstance(error, dict):
        return error
    return {k: v for k, v in error.items() if k != "traceback" and v not in (None, {})}


def _print_tracebacks(errors: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
    """Each distinct traceback of the run's and its steps' errors, in full."""
    seen: set[str] = set()
    for where, error in errors:
        trace = (error or {}).get("traceback")
        if isinstance(trace, str) and trace not in seen:
            seen.add(trace)
            console.print(f"\n[bold]traceback ({where})[/bold]")
            console.print(trace.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)


@app.command("history")
def history_command(ctx: typer.Context, run_id: str, as_json: JsonFlag = False) -> None:
    """The run's events in order: a timeline (the audit trail)."""
    with user_errors():
        lf = open_app(ctx)
        try:
            entries = queries.history(lf.store, run_id)
        finally:
            lf.close()
        if not entries:
            raise UnknownRun(run_id)
    if as_json:
        print_json(console, Page(entries).to_wire())
        return
    console.print(history_table(entries, title=f"run {run_id}"))
