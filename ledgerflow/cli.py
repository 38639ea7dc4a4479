"""The `ledgerflow` command line. Each command group lives in its own `_cli_*` module."""

from __future__ import annotations

import typer

from ledgerflow import _cli_outbox, _cli_projections, _cli_runs
from ledgerflow._cli_common import console, open_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="ledgerflow: durable, event-sourced workflows.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")
app.add_typer(_cli_runs.app, name="runs")
app.add_typer(_cli_projections.app, name="projections")
app.add_typer(_cli_outbox.app, name="outbox")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema by the versioned migrations (idempotent)."""
    from eventstore import create_engine
    from ledgerflow.migrations import upgrade_all

    settings = open_settings()
    engine = create_engine(settings.database_url)
    applied = upgrade_all(engine)
    if applied:
        for m in applied:
            console.print(f"applied {m.component} {m.version:>3}  {m.description}")
    else:
        console.print("schema is up to date")


def main() -> None:
    app()
