"""`ledgerflow workflows`: the workflows the `--workflows` modules (and
`LEDGERFLOW_WORKFLOWS`) register, as `GET /api/workflows` lists them. Imports those
modules only: no database is opened."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ledgerflow._app import import_workflows
from ledgerflow._authoring import default_registry
from ledgerflow.cli.common import console
from ledgerflow.cli.support import cli_settings, user_errors
from ledgerflow.domain.wire import Page

app = typer.Typer(help="The registered workflows: versions, description, input schema.")


@app.callback(invoke_without_command=True)
def list_workflows(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, as the API does.")] = False,
) -> None:
    """List the workflows the configured modules register."""
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        import_workflows(cli_settings(ctx).workflow_modules())
    found = default_registry.describe()
    if as_json:
        console.print_json(data=Page(found).to_wire())
        return
    if not found:
        console.print("no workflows are registered: pass --workflows MODULE or set "
                      "LEDGERFLOW_WORKFLOWS")
        return
    table = Table("workflow", "versions", "input", "description")
    for info in found:
        schema = info.input_schema
        table.add_row(info.name, ", ".join(info.versions),
                      "-" if schema is None else str(schema.get("title", "object")),
                      (info.description or "-").splitlines()[0])
    console.print(table)
