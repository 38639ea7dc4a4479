"""`ledgerflow runs list|show|history`, and the renderers the demo reuses.

Tables fit an 80-column terminal: ids are shortened to the fewest characters (at
least 8) that tell the listed runs apart, which `show`, `history` and every command
taking a run id accept as a prefix; ids and times never wrap (other cells shrink)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, get_args

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledgerflow.cli import remote
from ledgerflow.cli.common import SHORT_ID, console, error_text, new_app
from ledgerflow.cli.support import open_app, resolve, user_errors
from ledgerflow.domain.errors import UnknownRun
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.domain.wire import Page
from ledgerflow.projections import queries

app = new_app("Inspect runs: list, show one, its history.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RunIdArg = Annotated[str, typer.Argument(metavar="RUN_ID",
                                         help="The run's id, or a unique prefix of it.")]

_STATUS_STYLE = {"completed": "green", "failed": "red", "canceled": "yellow",
                 "compensating": "magenta", "suspended": "cyan", "running": "blue"}


def _short(value: Any, width: int = 60) -> str:
    """`value` (JSON unless a string) in at most `width` characters, for a table cell
    (markup escaped: a `[x]` in a value is shown, not taken for a style)."""
    return escape(_shortened(value, width))


def _shortened(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                             default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def _status(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def short_length(ids: Sequence[str]) -> int:
    """The fewest characters (at least `SHORT_ID`) that keep `ids` apart."""
    length = SHORT_ID
    while length < max(map(len, ids), default=0) and \
            len({i[:length] for i in ids}) < len(set(ids)):
        length += 1
    return length


def runs_table(records: Sequence[queries.RunRecord]) -> Table:
    """Runs as a table: short id, workflow, status, and what each waits for, its parent
    and its tenant where any listed run has one (a column of dashes is left out, to fit
    80 columns), and when it was created."""
    width = short_length([r.run_id for r in records])
    cells = {
        "run id": [r.run_id[:width] for r in records],
        "workflow": [f"{r.workflow_id}@{r.workflow_version}" for r in records],
        "status": [_status(r.status) for r in records],
        "waiting for": [f"{r.waitpoint['kind']} {r.waitpoint['name']}" if r.waitpoint
                        else "-" for r in records],
        "parent": [(r.parent_run_id or "-")[:width] for r in records],
        "tenant": [r.tenant_id or "-" for r in records],
        "created": [_when(r.created_at) for r in records],
    }
    shown = {header: column for header, column in cells.items()
             if header not in _OPTIONAL or any(value != "-" for value in column)}
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False)
    for header in shown:
        table.add_column(header, no_wrap=header in _NO_WRAP)
    for row in zip(*shown.values(), strict=True):
        table.add_row(*(cell if header == "status" else escape(cell)
                        for header, cell in zip(shown, row, strict=True)))
    return table


_OPTIONAL = ("waiting for", "parent", "tenant")
_NO_WRAP = ("run id", "status", "parent", "created")


def _brief(entry: queries.HistoryEntry) -> str:
    data = {k: v for k, v in entry.data.items() if v not in (None, [], {}, "")}
    for noisy in ("started_at", "tenant_meta", "priority", "workflow_version"):
        data.pop(noisy, None)
    return _short(data, 70)


def history_table(entries: Sequence[queries.HistoryEntry], title: str | None = None) -> Table:
    """A run's history as a timeline: time, version, event type, short data."""
    table = Table("time", "v", "event", "data", title=title, title_justify="left")
    table.columns[0].no_wrap = True
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
    status: Annotated[RunStatus | None, typer.Option(
        metavar="STATUS", help="Runs in this status: pending, running, suspended, "
        "compensating, completed, failed or canceled.")] = None,
    workflow: Annotated[str | None, typer.Option(
        "--workflow", metavar="WORKFLOW", help="Runs of this workflow.")] = None,
    tenant: Annotated[str | None, typer.Option(metavar="TENANT",
                                               help="Runs of this tenant.")] = None,
    tag: Annotated[str | None, typer.Option(metavar="TAG", help="Runs with this tag.")] = None,
    parent: Annotated[str | None, typer.Option(
        metavar="RUN_ID", help="Children of this run (its id or a unique prefix).")] = None,
    resumed_from: Annotated[str | None, typer.Option(
        "--resumed-from", metavar="RUN_ID", help="Runs that resumed this run (its id or a "
        "unique prefix).")] = None,
    rerun_of: Annotated[str | None, typer.Option(
        "--rerun-of", metavar="RUN_ID", help="Reruns of this run (its id or a unique "
        "prefix).")] = None,
    compensation: Annotated[str | None, typer.Option(
        metavar="OUTCOME", help="Failed runs whose rollback ended so: compensated or "
        "compensation_failed.", callback=_one_of(get_args(queries.Compensation)))] = None,
    limit: Annotated[int, typer.Option(min=1, max=queries.MAX_LIMIT, metavar="N",
                                       help="At most N runs (a page).")] = 50,
    cursor: Annotated[str | None, typer.Option(
        metavar="CURSOR", help="The next page: the cursor a previous page printed.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first. Filters combine."""
    if remote.server_of(ctx) is not None:
        filters = {"status": status.value if status else None, "workflow_id": workflow,
                   "tenant_id": tenant, "tag": tag, "parent_run_id": parent,
                   "resumed_from": resumed_from, "rerun_of": rerun_of,
                   "compensation": compensation}
        with user_errors(), remote.client_of(ctx) as client:
            page = client.list_page(limit=limit, cursor=cursor, **filters)
        records, next_cursor = list(page.data), page.next_cursor
    else:
        records, next_cursor = _list_local(ctx, status, workflow, tenant, tag, parent,
                                           resumed_from, rerun_of, compensation, limit, cursor)
    if as_json:
        print_json(console, Page(records, next_cursor).to_wire())
        return
    if not records:
        console.print("no runs")
        return
    console.print(runs_table(records))
    if next_cursor:
        console.print(f"more: --cursor {next_cursor}")


def _list_local(ctx: typer.Context, status: RunStatus | None, workflow: str | None,
                tenant: str | None, tag: str | None, parent: str | None,
                resumed_from: str | None, rerun_of: str | None, compensation: str | None,
                limit: int, cursor: str | None,
                ) -> tuple[list[queries.RunRecord], str | None]:
    with user_errors():
        lf = open_app(ctx)
        try:
            with lf.db.connect() as conn:
                parent, resumed_from, rerun_of = (
                    None if given is None else queries.resolve_run_id(conn, given)
                    for given in (parent, resumed_from, rerun_of))
                records, next_cursor = queries.list_runs(
                    conn, status=status, workflow_id=workflow, tenant_id=tenant, tag=tag,
                    parent_run_id=parent, resumed_from=resumed_from, rerun_of=rerun_of,
                    compensation=compensation, limit=limit, cursor=cursor)
        finally:
            lf.close()
    return records, next_cursor


@app.command("show")
def show_command(ctx: typer.Context, run_id: RunIdArg, as_json: JsonFlag = False) -> None:
    """Show one run. Its status, input, result, error, what it waits for, its steps."""
    if remote.server_of(ctx) is not None:
        with user_errors(), remote.client_of(ctx) as client:
            record = client.get(run_id)
            journal = client.journal(record.run_id)
    else:
        with user_errors():
            lf = open_app(ctx)
            try:
                with lf.db.connect() as conn:
                    record = queries.find_run(conn, run_id)
                    journal = queries.get_journal(conn, record.run_id)
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
        value = wire[key]
        shown = escape(error_text(record.error)) if key == "error" and value \
            else _short(value, 100)
        table.add_row(key, _status(value) if key == "status" else shown)
    console.print(table)
    if journal:
        steps = Table("step", "status", "attempt", "result / error")
        for j in journal:
            steps.add_row(escape(j.step_id), _status(j.status), str(j.attempt),
                          _short(error_text(j.error) if j.error else j.result))
        console.print(steps)
    _print_tracebacks([("run", record.error), *((f"step {j.step_id!r} attempt {j.attempt}",
                                                  j.error) for j in journal)])


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
def history_command(ctx: typer.Context, run_id: RunIdArg, as_json: JsonFlag = False) -> None:
    """Show a run's history. Its events in order: a timeline (the audit trail)."""
    if remote.server_of(ctx) is not None:
        with user_errors(), remote.client_of(ctx) as client:
            run_id = client.get(run_id).run_id
            entries = client.history(run_id)
    else:
        with user_errors():
            lf = open_app(ctx)
            try:
                run_id = resolve(lf, run_id)
                entries = queries.history(lf.store, run_id)
            finally:
                lf.close()
            if not entries:
                raise UnknownRun(run_id)
    if as_json:
        print_json(console, Page(entries).to_wire())
        return
    console.print(history_table(entries, title=f"run {escape(run_id)}"))
