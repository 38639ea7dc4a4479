"""`ledgerflow projections rebuild [NAME]` and `ledgerflow projections status`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ledgerflow.cli.common import console, err_console, open_settings
from ledgerflow.eventstore import EventStore, create_engine
from ledgerflow.projections import (
    Projection,
    RebuildInProgress,
    default_projections,
    rebuild,
    status,
)

app = typer.Typer(no_args_is_help=True, help="Read models: rebuild and status.")


def _store() -> EventStore:
    return EventStore(create_engine(open_settings().database_url))


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
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    batch_size: Annotated[int, typer.Option(help="Events per replay transaction.")] = 5000,
) -> None:
    """Replay the whole store into fresh tables and swap them in (no downtime)."""
    projections = _chosen(name)
    store = _store()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[rate]:>9,.0f} ev/s"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("replaying " + ", ".join(p.name for p in projections),
                            total=None, rate=0.0)

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
    """Each projection's code and built version, checkpoint, generation and lag."""
    found = status(_store(), default_projections())
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in found], indent=2))
        return
    table = Table("projection", "mode", "version", "built", "checkpoint", "generation", "lag",
                  "state")
    for s in found:
        state = "rebuilding" if s.rebuilding else "stale: rebuild due" if s.stale else "ok"
        table.add_row(s.name, s.mode, str(s.code_version), str(s.built_version),
                      f"{s.checkpoint:,}", str(s.table_generation), f"{s.lag:,}", state)
    console.print(table)
