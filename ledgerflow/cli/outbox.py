"""`ledgerflow outbox ...` commands: status, dead letters, replay, discard, purge."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from ledgerflow.cli.common import console, err_console, open_settings

app = typer.Typer(no_args_is_help=True, help="The transactional outbox and its dead letters.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead-lettered outbox rows.")
app.add_typer(dlq_app, name="dlq")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _engine() -> Any:
    from ledgerflow.eventstore import create_engine

    return create_engine(open_settings().database_url)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


@app.command("status")
def status_command(as_json: JsonFlag = False) -> None:
    """Pending / published / dead counts, oldest pending age, and lag per topic."""
    from ledgerflow import outbox
    report = outbox.status(_engine())
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
        return
    console.print(f"pending {report.pending}   published {report.published}   "
                  f"dead {report.dead}   oldest pending {_age(report.oldest_pending_age_s)}"
                  + (f"   held by dead rows {report.held}" if report.held else "")
                  + (f"   discarded {report.discarded}" if report.discarded else ""))
    if report.topics:
        table = Table("topic", "pending", "oldest pending")
        for lag in report.topics:
            table.add_row(lag.topic, str(lag.pending), _age(lag.oldest_pending_age_s))
        console.print(table)


@dlq_app.command("list")
def dlq_list(limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 100,
             as_json: JsonFlag = False) -> None:
    """Dead outbox rows, oldest first, with the error that killed them."""
    from ledgerflow import outbox
    rows = outbox.dead_letters(_engine(), limit)
    if as_json:
        console.print_json(json.dumps({"data": [r.to_wire() for r in rows]}))
        return
    if not rows:
        console.print("no dead letters")
        return
    table = Table("id", "event id", "type", "run", "topic", "attempts", "error")
    for r in rows:
        table.add_row(str(r.id), r.event_id, r.event_type or "-", r.key or "-", r.topic,
                      str(r.attempts), f"{r.error_class}: {r.last_error}")
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Option("--id", help="Row id (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="The oldest N dead rows.")] = None,
) -> None:
    """Put dead rows back to pending with a fresh retry counter (all of them by default)."""
    from ledgerflow import outbox
    if ids and limit is not None:
        err_console.print("give --id or --limit, not both")
        raise typer.Exit(2)
    _report("replayed", outbox.replay_dead(_engine(), ids or (), limit), ids or [])


@dlq_app.command("discard")
def dlq_discard(ids: Annotated[list[int], typer.Argument(
        help="Dead row id(s), as `dlq list` shows them.", show_default=False)]) -> None:
    """Give up dead rows: never sent; the later events of their runs flow on (a gap)."""
    from ledgerflow import outbox
    _report("discarded", outbox.discard_dead(_engine(), ids), ids)


def _report(done: str, changed: list[int], asked: list[int]) -> None:
    """Print the rows changed; exit 1 when some of the ids asked for were not dead."""
    console.print(f"{done} {len(changed)} dead row(s)"
                  + (f": {', '.join(map(str, changed))}" if changed else ""))
    missing = sorted(set(asked) - set(changed))
    if missing:
        err_console.print(f"not dead (or unknown): {', '.join(map(str, missing))}")
        raise typer.Exit(1)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90`, `90s`, `15m`, `12h` or `7d`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m, 12h or 7d")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])


@app.command("purge")
def purge(older_than: Annotated[str, typer.Option(
        "--older-than", help="Published longer ago than this (90s, 15m, 12h, 7d).")]) -> None:
    """Delete published rows past their retention period (pending and dead rows stay)."""
    from ledgerflow import outbox
    deleted = outbox.purge_published(_engine(), parse_duration(older_than))
    console.print(f"purged {deleted} published row(s)")
