"""`ledgerflow outbox ...` commands: status, dead letters, replay, discard, purge."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from ledgerflow.cli import remote
from ledgerflow.cli.common import SHORT_ID, console, err_console, new_app
from ledgerflow.cli.support import open_database, user_errors

app = new_app("The transactional outbox and its dead letters.")
dlq_app = new_app("Dead-lettered outbox rows.")
app.add_typer(dlq_app, name="dlq")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _engine() -> Any:
    """The database's engine; it must exist, upgraded (nothing is created)."""
    with user_errors():
        return open_database()


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


@app.command("status")
def status_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the outbox's state. Pending / published / dead counts, the oldest pending
    row's age, and the lag per topic."""
    from ledgerflow import outbox
    remote.refuse(ctx, "outbox status")
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
def dlq_list(ctx: typer.Context,
             limit: Annotated[int, typer.Option(min=1, metavar="N",
                                                help="At most N rows.")] = 100,
             as_json: JsonFlag = False) -> None:
    """List dead rows, oldest first. With the error that killed each."""
    from ledgerflow import outbox
    if remote.server_of(ctx) is not None:
        with user_errors(), remote.client_of(ctx) as client:
            rows = client.dead_letters(min(limit, 1000))
    else:
        rows = outbox.dead_letters(_engine(), limit)
    if as_json:
        console.print_json(json.dumps({"data": [r.to_wire() for r in rows]}))
        return
    if not rows:
        console.print("no dead letters")
        return
    table = Table("id", "event id", "type", "run", "topic", "attempts", "error")
    for column in table.columns[:4]:
        column.no_wrap = True
    for r in rows:  # ids shortened (--json has them whole); the error's message first
        table.add_row(str(r.id), r.event_id[:SHORT_ID], r.event_type or "-",
                      (r.key or "-")[:SHORT_ID], r.topic, str(r.attempts),
                      f"{r.error_class}: {r.last_error}")
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Option(
        "--id", metavar="ID", help="A dead row's id, as `dlq list` shows it (repeatable).")]
    = None,
    limit: Annotated[int | None, typer.Option(min=1, metavar="N",
                                              help="The oldest N dead rows.")] = None,
) -> None:
    """Send dead rows again. They go back to pending with a fresh retry counter (all of
    them unless --id or --limit says which)."""
    from ledgerflow import outbox
    if ids and limit is not None:
        err_console.print("give --id or --limit, not both")
        raise typer.Exit(2)
    if remote.server_of(ctx) is not None:
        with user_errors(), remote.client_of(ctx) as client:
            replayed = client.replay_dead_letters(ids, limit)
        _report("replayed", replayed, ids or [])
        return
    _report("replayed", outbox.replay_dead(_engine(), ids or (), limit), ids or [])


@dlq_app.command("discard")
def dlq_discard(ctx: typer.Context, ids: Annotated[list[int], typer.Argument(
        help="Dead row id(s), as `dlq list` shows them.", show_default=False)]) -> None:
    """Give up dead rows: never sent; the later events of their runs flow on (a gap)."""
    from ledgerflow import outbox
    if remote.server_of(ctx) is not None:
        with user_errors(), remote.client_of(ctx) as client:
            discarded = client.discard_dead_letters(ids)
        _report("discarded", discarded, ids)
        return
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
    """`90s`, `15m`, `12h` or `7d`: a number and its unit (a bare number is refused)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration: give a number and its unit, "
                                 "such as 90s, 15m, 12h or 7d")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@app.command("purge")
def purge(ctx: typer.Context, older_than: Annotated[str, typer.Option(
        "--older-than", metavar="AGE",
        help="Published longer ago than AGE: 90s, 15m, 12h or 7d.")]) -> None:
    """Delete old published rows. Pending and dead rows stay."""
    from ledgerflow import outbox
    remote.refuse(ctx, "outbox purge")
    age = parse_duration(older_than)
    deleted = outbox.purge_published(_engine(), age)
    console.print(f"purged {deleted} published row(s)")
