"""The `ledgerflow` command line. Each command group lives in its own module here."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from ledgerflow.cli import commands, flows, observe, outbox, projections, runs
from ledgerflow.cli.common import console, open_settings
from ledgerflow.cli.relay import relay_command
from ledgerflow.cli.support import cli_settings, user_errors

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="ledgerflow: durable, event-sourced workflows.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")
app.add_typer(runs.app, name="runs")
app.add_typer(projections.app, name="projections")
app.add_typer(outbox.app, name="outbox")
app.add_typer(flows.app, name="workflows")
for _name, _command in commands.COMMANDS.items():
    app.command(_name)(_command)
app.command("relay")(relay_command)
app.command("doctor")(observe.doctor_command)
app.command("metrics")(observe.metrics_command)


@app.callback()
def main_options(
    ctx: typer.Context,
    workflows: Annotated[list[str] | None, typer.Option(
        "--workflows", help="Import MODULE, which defines workflows (repeatable; adds to "
        "LEDGERFLOW_WORKFLOWS).", metavar="MODULE")] = None,
) -> None:
    """ledgerflow: durable, event-sourced workflows."""
    ctx.obj = {"workflows": list(workflows or [])}


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema by the versioned migrations (idempotent)."""
    from ledgerflow.eventstore import create_engine
    from ledgerflow.migrations import upgrade_all

    settings = open_settings()
    with user_errors():
        engine = create_engine(settings.database_url)
        applied = upgrade_all(engine)
    if applied:
        for m in applied:
            console.print(f"applied {m.component} {m.version:>3}  {m.description}")
    else:
        console.print("schema is up to date")


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    threads: Annotated[int, typer.Option(min=1, help="Worker threads.")] = 4,
    poll_interval: Annotated[float, typer.Option(min=0.01)] = 0.5,
    no_api: Annotated[bool, typer.Option("--no-api", help="Do not serve HTTP.")] = False,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run no worker.")] = False,
    no_relay: Annotated[bool, typer.Option("--no-relay", help="Run no outbox relay.")] = False,
    no_projector: Annotated[bool, typer.Option("--no-projector",
                                               help="Run no catch-up projector.")] = False,
) -> None:
    """API + worker + outbox relay + projector in one process (SIGTERM stops gracefully)."""
    from ledgerflow._app import Ledgerflow
    from ledgerflow.cli.serve import ServeOptions, serve
    from ledgerflow.observability.logs import configure_logging

    options = ServeOptions(host=host, port=port, threads=threads, poll_interval=poll_interval,
                           api=not no_api, worker=not no_worker, relay=not no_relay,
                           projector=not no_projector)
    with user_errors():
        settings = cli_settings(ctx)
        settings.token_tenants()  # a malformed LEDGERFLOW_API_TOKENS fails here, clearly
        configure_logging(settings)
        lf = Ledgerflow.open(settings)
    serve(lf, options, announce=lambda line: console.print(line, highlight=False))


@app.command("demo")
def demo_command(
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="Keep the demo database and sink here (default: a temporary directory).",
        file_okay=False)] = None,
) -> None:
    """Run the bundled checkout saga (and a failing, compensating variant) end to end."""
    import ledgerflow.demo
    from ledgerflow.demo._run import demo_settings

    with user_errors():
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="ledgerflow-demo-"))
        directory.mkdir(parents=True, exist_ok=True)
        settings = demo_settings(open_settings(), directory.resolve())
        ledgerflow.demo.run_demo(settings, console)


def main() -> None:
    app()

