"""`ledgerflow projections ...` commands."""

import typer

app = typer.Typer(no_args_is_help=True, help="projections commands")
