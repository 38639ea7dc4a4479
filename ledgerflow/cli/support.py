"""What the CLI's commands share: opening the app or the database from the command
line's settings (never creating either, except where a command says so), resolving
run ids, parsing JSON options, and turning user mistakes into one clear line."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow._app import Ledgerflow, WorkflowImportError
from ledgerflow.cli.common import err_console, open_settings
from ledgerflow.domain.errors import InvalidInput, LedgerflowError
from ledgerflow.projections import queries
from ledgerflow.settings import Settings

try:  # recent typer releases vendor click as `typer._click`
    from typer._click.globals import get_current_context as current_context
except ImportError:  # pragma: no cover - a typer on the real click
    from click import get_current_context as current_context  # type: ignore[no-redef]


def cli_settings(ctx: typer.Context | None = None) -> Settings:
    """Settings from the environment plus the global `--workflows` modules."""
    settings = open_settings()
    extra: list[str] = list((ctx.obj or {}).get("workflows", [])) if ctx is not None else []
    if extra:
        modules = [*settings.workflow_modules(), *extra]
        settings = settings.model_copy(update={"workflows": ",".join(modules)})
    return settings


def _debug() -> bool:
    """`--debug` or `LEDGERFLOW_DEBUG` was given: errors show their traceback."""
    ctx = current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and isinstance(root.obj, dict) and root.obj.get("debug"))


@contextmanager
def user_errors() -> Iterator[None]:
    """Print an error the user can act on as one line and exit 1 (with `--debug`, its
    traceback first)."""
    try:
        yield
    except WorkflowImportError as exc:
        _fail(exc, str(exc) + ("" if _debug() else " (--debug shows the traceback)"))
    except InvalidInput as exc:  # one line per error
        fail("\n".join([f"the input of workflow {exc.workflow!r} does not validate; "
                        "nothing was appended", *exc.lines()]))
    except LedgerflowError as exc:
        _fail(exc, str(exc))
    except (sa_exc.OperationalError, sa_exc.ArgumentError, sa_exc.InterfaceError) as exc:
        _fail(exc, f"cannot use the database: {getattr(exc, 'orig', None) or exc}")
    except ValidationError as exc:  # a setting that does not validate
        _fail(exc, settings_error(exc))
    except ValueError as exc:  # an unsupported URL, a malformed LEDGERFLOW_API_TOKENS entry
        _fail(exc, str(exc))


def settings_error(exc: ValidationError) -> str:
    """A `Settings` validation error in one line, naming the variables."""
    problems = [f"LEDGERFLOW_{'_'.join(map(str, e['loc'])).upper()}={e['input']!r}: {e['msg']}"
                for e in exc.errors()]
    return "invalid setting " + "; ".join(problems)


def _fail(exc: BaseException, message: str) -> None:
    if _debug():
        traceback.print_exception(exc)
    fail(" ".join(message.split()))


def fail(message: str, code: int = 1) -> None:
    """Print `error: message` on stderr and exit with `code`."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print `warning: message` on stderr."""
    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False,
                      soft_wrap=True)


def parse_json(text: str | None, option: str) -> Any:
    """The JSON value of a `--input`/`--payload` option (None when not given)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{option} is not valid JSON: {exc}") from None


def open_app(ctx: typer.Context | None = None) -> Ledgerflow:
    """`Ledgerflow.open` on the command line's settings, on a database that exists with
    its schema upgraded (`DatabaseNotReady` otherwise: nothing is created)."""
    settings = cli_settings(ctx)
    open_database(settings).dispose()
    return Ledgerflow.open(settings, upgrade=False)


def open_database(settings: Settings | None = None) -> SAEngine:
    """An engine on the settings' database, which must exist with its schema upgraded."""
    from ledgerflow.migrations import open_existing

    return open_existing((settings or open_settings()).database_url)


def resolve(lf: Ledgerflow, run_id: str) -> str:
    """The full id of the run `run_id` names: its id or a unique prefix (>= 6 chars)."""
    with lf.db.connect() as conn:
        return queries.resolve_run_id(conn, run_id)
