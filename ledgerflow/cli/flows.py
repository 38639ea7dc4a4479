"""`ledgerflow workflows [list]|graph`: the registered workflows (as `GET
/api/workflows` lists them), and a flow's graph.

Both read the registry only (no database): the workflow modules are imported from
`--workflows` / `LEDGERFLOW_WORKFLOWS`, as `serve` imports them. `graph` prints
Mermaid by default (`--format json`: the API's `{workflow, version, nodes, edges}`);
a code-first workflow has no graph (exit 1, saying so).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from ledgerflow._app import import_workflows
from ledgerflow._authoring import WorkflowRegistry, default_registry
from ledgerflow.cli.common import console, new_app
from ledgerflow.cli.support import cli_settings, user_errors
from ledgerflow.domain.wire import Page
from ledgerflow.flows import graph_of, kind, mermaid

app = new_app("Registered workflows and their graphs.", no_args_is_help=False)


class GraphFormat(StrEnum):
    MERMAID = "mermaid"
    JSON = "json"


def _registry(ctx: typer.Context) -> WorkflowRegistry:
    import_workflows(cli_settings(ctx).workflow_modules())
    return default_registry


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON, as GET /api/workflows.")]


@app.callback(invoke_without_command=True)
def workflows_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Registered workflows (as `list`); `graph NAME` draws a flow."""
    if ctx.invoked_subcommand is None:
        list_command(ctx, as_json)


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Registered workflows: name, versions, kind (a flow is drawable), input model,
    description."""
    with user_errors():
        found = _registry(ctx).describe(kind)
    if as_json:
        console.print_json(json.dumps(Page(found).to_wire()))
        return
    if not found:
        console.print("no workflows registered (import them with --workflows MODULE)")
        return
    table = Table("workflow", "versions", "kind", "input", "description")
    for info in found:
        schema = info.input_schema
        table.add_row(info.name, ", ".join(info.versions), info.kind,
                      "-" if schema is None else str(schema.get("title", "object")),
                      (info.description or "-").splitlines()[0])
    console.print(table)


@app.command("graph")
def graph_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The flow's workflow name.")],
    fmt: Annotated[GraphFormat, typer.Option("--format", metavar="FORMAT",
                                             help="mermaid or json.")] = GraphFormat.MERMAID,
    version: Annotated[str | None, typer.Option(
        metavar="VERSION", help="The workflow's version (default: the latest).")] = None,
) -> None:
    """Print a flow's graph (Mermaid flowchart text by default)."""
    with user_errors():
        graph = graph_of(_registry(ctx), name, version)
    if fmt is GraphFormat.JSON:
        print(json.dumps(graph, indent=2))
    else:
        print(mermaid(graph), end="")
