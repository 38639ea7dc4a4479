"""`ledgerflow workflows list|graph`: the registered workflows, and a flow's graph.

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
from ledgerflow.cli.common import console
from ledgerflow.cli.support import cli_settings, user_errors
from ledgerflow.flows import flow_spec, graph_of, mermaid

app = typer.Typer(no_args_is_help=True, help="Registered workflows and their graphs.")


class GraphFormat(StrEnum):
    MERMAID = "mermaid"
    JSON = "json"


def _registry(ctx: typer.Context) -> WorkflowRegistry:
    import_workflows(cli_settings(ctx).workflow_modules())
    return default_registry


@app.command("list")
def list_command(ctx: typer.Context, as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of a table.")] = False) -> None:
    """Registered workflows: name, versions, and whether each is a flow (drawable)."""
    with user_errors():
        definitions = _registry(ctx).definitions()
    versions: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for d in definitions:
        versions.setdefault(d.name, []).append(d.version)
        kinds[d.name] = "flow" if flow_spec(d) is not None else kinds.get(d.name, "code")
    if as_json:
        console.print_json(json.dumps({"data": [
            {"name": n, "versions": v, "kind": kinds[n]} for n, v in versions.items()]}))
        return
    if not versions:
        console.print("no workflows registered (import them with --workflows MODULE)")
        return
    table = Table("workflow", "versions", "kind")
    for name, known in versions.items():
        table.add_row(name, ", ".join(known), kinds[name])
    console.print(table)


@app.command("graph")
def graph_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The flow's workflow name.")],
    fmt: Annotated[GraphFormat, typer.Option("--format", help="mermaid or json.")] =
    GraphFormat.MERMAID,
    version: Annotated[str | None, typer.Option(help="Default: the latest.")] = None,
) -> None:
    """Print a flow's graph (Mermaid flowchart text by default)."""
    with user_errors():
        graph = graph_of(_registry(ctx), name, version)
    if fmt is GraphFormat.JSON:
        print(json.dumps(graph, indent=2))
    else:
        print(mermaid(graph), end="")
