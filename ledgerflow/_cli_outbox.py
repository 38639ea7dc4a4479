"""`ledgerflow outbox ...` commands."""

import typer

app = typer.Typer(no_args_is_help=True, help="outbox commands")
