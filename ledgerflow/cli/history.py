"""`ledgerflow archive run|list|restore` and `ledgerflow audit verify`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ledgerflow.cli.common import SHORT_ID, console, new_app
from ledgerflow.cli.support import fail, open_app, resolve, user_errors

archive_app = new_app("Archive finished runs past their retention, list and restore them.")
audit_app = new_app("Prove runs' histories are untampered (their hash chains).")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@archive_app.command("run")
def archive_run(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Archive every finished run past its retention, now. (`serve` does it on a timer:
    LEDGERFLOW_ARCHIVE_INTERVAL_SECONDS.)"""
    with user_errors():
        lf = open_app(ctx)
        try:
            report = lf.archiver().archive_all()
        finally:
            lf.close()
    if as_json:
        console.print_json(json.dumps({"archived": report.archived, "kept": report.kept,
                                       "events": report.events}))
        return
    console.print(f"archived {report.runs} runs ({report.events} events) to "
                  f"{lf.settings.archive_dir}")
    for path, ids in report.archived.items():
        console.print(f"  {path}: {len(ids)} runs")
    for run_id, why in sorted(report.kept.items()):
        console.print(f"  kept {run_id}: {why}")


@archive_app.command("list")
def archive_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the archived runs: day, workflow, events, file."""
    from ledgerflow.cli.support import cli_settings
    from ledgerflow.history import ArchiveFiles
    with user_errors():
        settings = cli_settings(ctx)
        runs = ArchiveFiles(settings.archive_dir).runs()
    if as_json:
        console.print_json(json.dumps({"data": [
            {"runId": r.run_id, "workflowId": r.workflow_id, "day": r.day,
             "events": r.events, "head": r.head, "file": r.file} for r in runs]}))
        return
    if not runs:
        console.print(f"no archived runs in {settings.archive_dir}")
        return
    table = Table("day", "workflow", "run", "events", "file")
    for r in runs:
        table.add_row(r.day, r.workflow_id, r.run_id, str(r.events), r.file)
    console.print(table)


@archive_app.command("restore")
def archive_restore(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The archived run's id.")],
) -> None:
    """Bring an archived run back into the store, as it was. Its chain is verified
    first; its views are projected again; nothing is published again."""
    with user_errors():
        lf = open_app(ctx)
        try:
            count = lf.archiver().restore(run_id)
        finally:
            lf.close()
    console.print(f"restored run {run_id}: {count} events, chain verified")


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(
        metavar="RUN_ID", help="The run (id or unique prefix); omit with --all.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Verify every run in the store.")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Check runs' histories against their hash chains. Exits 1 when one does not
    hold, naming the first version that does not and why."""
    from ledgerflow.history import audit_all, audit_run
    if (run_id is None) == (not every):
        fail("give a RUN_ID or --all (not both)", code=2)
    with user_errors():
        lf = open_app(ctx)
        try:
            with lf.db.connect() as conn:
                reports = list(audit_all(lf.store, conn)) if every else \
                    [audit_run(lf.store, conn, resolve(lf, run_id or ""))]
        finally:
            lf.close()
    bad = [r for r in reports if not r.verified]
    if as_json:
        console.print_json(json.dumps({"data": [r.to_wire() for r in reports]}))
    else:
        for r in reports:
            if r.verified:
                console.print(f"ok   {r.run_id}: {r.events} events, head "
                              f"{(r.head or '-')[:2 * SHORT_ID]}")
            else:
                console.print(f"FAIL {r.run_id}: version {r.first_bad_version}: {r.reason}",
                              soft_wrap=True)
        if every:
            console.print(f"{len(reports) - len(bad)} of {len(reports)} runs verified")
    if bad:
        raise typer.Exit(1)
