"""`ledgerflow projections rebuild [NAME]` and `ledgerflow projections status`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ledgerflow.cli.common import console, err_console, new_app
from ledgerflow.cli.support import open_database, user_errors
from ledgerflow.eventstore import EventStore
from ledgerflow.projections import (
    Projection,
    RebuildInProgress,
    default_projections,
    rebuild,
    status,
)

app = new_app("Read models: rebuild and status.")


def _store() -> EventStore:
    """The store of the database, which must exist, upgraded (nothing is created)."""
    with user_errors():
        return EventStore(open_database())


def _chosen(name: str | None) -> list[Projection]:
    projections = default_projections()
    if name is None:
        return projections
    chosen = [p for p in projections if p.name == name]
    if not chosen:
        known = ", ".join(p.name for p in projections)
        err_console.print(f"unknown projection {name!r}; known: {known}")
        raise typer.Exit(2)
    return chosen


@app.command("rebuild")
def rebuild_command(
    name: Annotated[str | None, typer.Argument(
        metavar="NAME", help="One projection: run_views or step_journal (default: all).")]
    = None,
    batch_size: Annotated[int, typer.Option(min=1, metavar="N",
                                            help="Events per replay transaction.")] = 5000,
) -> None:
    """Rebuild read models from the events. Replays the whole store into fresh tables
    and swaps them in (readers go on meanwhile)."""
    projections = _chosen(name)
    store = _store()
    console.print(f"rebuilding {', '.join(p.name for p in projections)}", highlight=False)
    # Fits 80 columns: the bar takes what the figures leave.
    columns = (TextColumn("[bold]{task.description}"), BarColumn(bar_width=None),
               MofNCompleteColumn(), TextColumn("{task.fields[rate]:>7,.0f} ev/s"),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, expand=True) as bar:
        task = bar.add_task("replay", total=None, rate=0.0)

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0.0
            bar.update(task, completed=done, total=total,
                       rate=done / elapsed if elapsed else 0.0)

        try:
            report = rebuild(store, projections, batch_size=batch_size, progress=progress)
        except RebuildInProgress as error:
            err_console.print(f"error: {error}")
            raise typer.Exit(1) from None
    rate = report.events / report.seconds if report.seconds else 0.0
    console.print(f"rebuilt {', '.join(report.projections)}: {report.events:,} events in "
                  f"{report.seconds:.1f}s ({rate:,.0f} ev/s), swapped in at position "
                  f"{report.position:,}")


@app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each read model's state. Code and built version, checkpoint, generation,
    lag; "not started" before anything caught it up or rebuilt it."""
    found = status(_store(), default_projections())
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in found], indent=2))
        return
    # "code": the version this code builds; "built": the version of the live tables.
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False)
    for header in ("projection", "mode", "code", "built", "checkpoint", "generation", "lag",
                   "state"):
        table.add_column(header, no_wrap=True)
    for s in found:
        if not s.started:
            table.add_row(s.name, s.mode, str(s.code_version), "-", "-", "-",
                          f"{s.lag:,}" if s.lag else "-", "not started")
            continue
        state = "rebuilding" if s.rebuilding else "stale: rebuild due" if s.stale else "ok"
        table.add_row(s.name, s.mode, str(s.code_version), str(s.built_version),
                      f"{s.checkpoint:,}", str(s.table_generation), f"{s.lag:,}", state)
    console.print(table)
