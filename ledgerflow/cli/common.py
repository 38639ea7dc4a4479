"""What every CLI command shares: settings, consoles, and the command groups' help.

Every command group is made by `new_app`: plain help (no rich panels) whose option
list shows the metavar a parameter declares (`--input JSON`, `--limit N`) and never
the Python type typer would otherwise print (`<str>`, `<bool>`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from ledgerflow.settings import Settings

console = Console()
err_console = Console(stderr=True)

SHORT_ID = 8
"""Characters of an id a table shows (at least; a run id is accepted as a prefix)."""

_TYPE = re.compile(r"\s*<[^>]*>")


def open_settings() -> Settings:
    return Settings()


def error_text(error: Mapping[str, Any] | None) -> str:
    """A stored error as a person reads it: `Type: message`, then where it happened and
    its plain details (nested ones, such as a cause or a traceback, are left out)."""
    if not error:
        return "-"
    message = str(error.get("message", ""))
    text = f"{error.get('type', 'Error')}: {message}"
    step = error.get("step_id")
    if step and f"'{step}'" not in message:
        text += f" (step {step!r})"
    details = error.get("details") or {}
    plain = [f"{k}={v}" for k, v in details.items() if isinstance(v, str | int | float | bool)]
    return text + (f" [{', '.join(plain)}]" if plain else "")


# typer calls these with its own click's objects (vendored as `typer._click` in recent
# releases): they are typed `Any` so that either click fits.


def _help_records(command: Any, ctx: Any) -> tuple[list[Any], list[Any]]:
    """(arguments, options) as `(name, help)` rows, the type placeholders left out."""
    arguments, options = [], []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        name = _TYPE.sub("", record[0])
        if param.param_type_name == "argument":
            arguments.append((param.metavar or (param.name or "").upper(), record[1]))
        else:
            options.append((name, record[1]))
    return arguments, options


def _format(command: Any, ctx: Any, formatter: Any) -> None:
    arguments, options = _help_records(command, ctx)
    for title, rows in (("Arguments", arguments), ("Options", options)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


def _usage(command: Any, ctx: Any) -> list[str]:
    pieces = [command.options_metavar or "[OPTIONS]"]
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            name = param.metavar or (param.name or "").upper()
            pieces.append(name if param.required else f"[{name}]")
    return pieces


class PlainCommand(TyperCommand):
    """A command whose help lists metavars, not Python types."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format(self, ctx, formatter)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage(self, ctx)


class PlainGroup(TyperGroup):
    """A command group whose help lists metavars, not Python types, then its commands."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*_usage(self, ctx), "COMMAND [ARGS]..."]


class _App(typer.Typer):
    def command(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        kwargs.setdefault("cls", PlainCommand)
        return super().command(*args, **kwargs)


def new_app(help: str, **options: Any) -> typer.Typer:
    """A command group with ledgerflow's help style (see the module docstring)."""
    options.setdefault("no_args_is_help", True)
    return _App(cls=PlainGroup, rich_markup_mode=None, add_completion=False,
                pretty_exceptions_enable=False, help=help, **options)
