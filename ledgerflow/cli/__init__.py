"""The `ledgerflow` command line. Each command group lives in its own module here."""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from ledgerflow.cli import commands, flows, history, observe, outbox, projections, remote, runs
from ledgerflow.cli.common import console, new_app, open_settings
from ledgerflow.cli.launch import serve_command, worker
from ledgerflow.cli.relay import relay_command
from ledgerflow.cli.support import user_errors

app = new_app("ledgerflow: durable, event-sourced workflows.")
db_app = new_app("Database schema.")
app.add_typer(db_app, name="db")
app.add_typer(runs.app, name="runs")
app.add_typer(projections.app, name="projections")
app.add_typer(outbox.app, name="outbox")
app.add_typer(flows.app, name="workflows")
app.add_typer(history.archive_app, name="archive")
app.add_typer(history.audit_app, name="audit")
for _name, _command in commands.COMMANDS.items():
    app.command(_name)(_command)
app.command("worker")(worker)
app.command("relay")(relay_command)
app.command("serve")(serve_command)
app.command("doctor")(observe.doctor_command)
app.command("metrics")(observe.metrics_command)


def _version(shown: bool) -> None:
    if shown:
        try:
            number = version("ledgerflow")
        except PackageNotFoundError:  # running from a source tree that is not installed
            number = "unknown"
        console.print(f"ledgerflow {number}", highlight=False)
        raise typer.Exit()


def _setting(name: str) -> Any:
    try:
        return getattr(open_settings(), name)
    except ValidationError:
        return None


@app.callback()
def main_options(
    ctx: typer.Context,
    workflows: Annotated[list[str] | None, typer.Option(
        "--workflows", metavar="MODULE", help="Import the workflows of MODULE: a module name "
        "(found in the current directory too) or a file such as booking.py. Repeatable; "
        "adds to LEDGERFLOW_WORKFLOWS.")] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the traceback of an error (also LEDGERFLOW_DEBUG=1).")] = False,
    server: Annotated[str | None, typer.Option(
        "--server", metavar="URL", help="Send the run commands to the HTTP API of the "
        "`ledgerflow serve` at URL instead of opening the database (also "
        "LEDGERFLOW_SERVER): " + remote.SUPPORTED + ".")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", metavar="TOKEN", help="The bearer token for --server (also "
        "LEDGERFLOW_API_TOKEN).")] = None,
    _shown: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """ledgerflow: durable, event-sourced workflows."""
    ctx.obj = {"workflows": list(workflows or []),
               "debug": debug or bool(_setting("debug")),
               "server": server or _setting("server"), "token": token or _setting("api_token")}
    if ctx.invoked_subcommand in remote.LOCAL_ONLY:
        remote.refuse(ctx, ctx.invoked_subcommand)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema. Creates the database too (a SQLite file), or
    applies the migrations it lacks; safe to repeat."""
    from ledgerflow.eventstore import create_engine
    from ledgerflow.migrations import upgrade_all

    with user_errors():
        engine = create_engine(open_settings().database_url)
        try:
            applied = upgrade_all(engine)
        finally:
            engine.dispose()
    if applied:
        for m in applied:
            console.print(f"applied {m.component} {m.version}: {m.description}",
                          highlight=False, soft_wrap=True)
    else:
        console.print("schema is up to date")


@app.command("demo")
def demo_command(
    directory: Annotated[Path | None, typer.Option(
        "--dir", metavar="PATH", file_okay=False,
        help="Keep the demo's database and event file in PATH (created if missing). "
        "Without it, a temporary directory is used and removed at the end.")] = None,
) -> None:
    """Run the bundled example end to end. A checkout saga and a failing variant whose
    compensators undo its steps, on SQLite, with events to a JSON-lines file."""
    import ledgerflow.demo
    from ledgerflow.demo._run import demo_settings

    where = directory or Path(tempfile.mkdtemp(prefix="ledgerflow-demo-"))
    try:
        with user_errors():
            where.mkdir(parents=True, exist_ok=True)
            settings = demo_settings(open_settings(), where.resolve())
            ledgerflow.demo.run_demo(settings, console)
    finally:
        if directory is None:
            shutil.rmtree(where, ignore_errors=True)
    if directory is None:
        console.print("the demo's temporary directory is removed; "
                      "`ledgerflow demo --dir demo` keeps it", highlight=False, markup=False,
                      soft_wrap=True)
    else:
        console.print("look at its runs: export LEDGERFLOW_DATABASE_URL=sqlite:///"
                      f"{where.resolve() / 'ledgerflow.db'}; ledgerflow runs list",
                      highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    app()
