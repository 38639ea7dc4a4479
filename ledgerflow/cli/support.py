"""What the run/command CLI modules share: opening the app from the command line's
settings, parsing JSON options, and turning user mistakes into one clear line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from sqlalchemy import exc as sa_exc

from ledgerflow._app import Ledgerflow
from ledgerflow.cli.common import err_console, open_settings
from ledgerflow.domain.errors import InvalidInput, LedgerflowError
from ledgerflow.settings import Settings


def cli_settings(ctx: typer.Context | None = None) -> Settings:
    """Settings from the environment plus the global `--workflows` modules."""
    settings = open_settings()
    extra: list[str] = list((ctx.obj or {}).get("workflows", [])) if ctx is not None else []
    if extra:
        modules = [*settings.workflow_modules(), *extra]
        settings = settings.model_copy(update={"workflows": ",".join(modules)})
    return settings


@contextmanager
def user_errors() -> Iterator[None]:
    """Print an error the user can act on as one line and exit 1 (no traceback)."""
    try:
        yield
    except InvalidInput as exc:  # one line per error
        fail("\n".join([f"the input of workflow {exc.workflow!r} does not validate; "
                        "nothing was appended", *exc.lines()]))
    except LedgerflowError as exc:
        fail(str(exc))
    except ImportError as exc:
        fail(f"cannot import a workflow module: {exc}")
    except (sa_exc.OperationalError, sa_exc.ArgumentError) as exc:
        fail(f"cannot use the database: {getattr(exc, 'orig', None) or exc}")
    except ValueError as exc:  # e.g. a malformed LEDGERFLOW_API_TOKENS entry
        fail(str(exc))


def fail(message: str, code: int = 1) -> None:
    """Print `error: message` on stderr and exit with `code`."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def parse_json(text: str | None, option: str) -> Any:
    """The JSON value of a `--input`/`--payload` option (None when not given)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{option} is not valid JSON: {exc}") from None


def open_app(ctx: typer.Context | None = None) -> Ledgerflow:
    """`Ledgerflow.open` on the command line's settings (schema upgraded if needed)."""
    return Ledgerflow.open(cli_settings(ctx))
