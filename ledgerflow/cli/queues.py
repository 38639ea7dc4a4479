"""`ledgerflow queues list|set|pause|resume`: queues and their limits, at run time.

Each change is a `QueueChanged` event on the queue's stream (actor "cli"), taken up
by every worker at its next claim: no restart. With `--server URL` they go through
that server's API (`/api/queues`) instead of the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from ledgerflow._app import Ledgerflow
from ledgerflow.cli.common import console, new_app
from ledgerflow.cli.remote import client_of, server_of
from ledgerflow.cli.support import open_app, user_errors
from ledgerflow.client import Client
from ledgerflow.client._calls import QueueLimits
from ledgerflow.domain.wire import Page
from ledgerflow.runtime.queues import QueueInfo, RateLimit

app = new_app("Queues: list them, change their limits, pause and resume them.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON, as GET /api/queues.")]
QueueArg = Annotated[str, typer.Argument(metavar="QUEUE", help="The queue's name.")]


class Clearable(StrEnum):
    CONCURRENCY = "concurrency"
    PER_KEY_CONCURRENCY = "per-key-concurrency"
    RATE_LIMIT = "rate-limit"


def _show(found: list[QueueInfo], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(Page(found).to_wire()))
        return
    table = Table("queue", "concurrency", "per key", "rate", "paused", "depth", "executing",
                  "oldest waiting")
    for q in found:
        rate = "-" if q.rate_limit is None else \
            f"{q.rate_limit['limit']}/{q.rate_limit['periodSeconds']:g}s"
        oldest = "-" if q.oldest_waiting_seconds is None else f"{q.oldest_waiting_seconds:.1f}s"
        table.add_row(q.name, _limit(q.concurrency), _limit(q.per_key_concurrency), rate,
                      "yes" if q.paused else "no", str(q.depth), str(q.executing), oldest)
    console.print(table)


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every queue: limits, paused, due runs waiting, runs executing, oldest wait."""
    if server_of(ctx) is not None:
        with user_errors(), client_of(ctx) as client:
            found = client.queues()
    else:
        with user_errors():
            lf = open_app(ctx)
            try:
                found = lf.engine.queues.list()
            finally:
                lf.close()
    _show(found, as_json)


@app.command("set")
def set_command(
    ctx: typer.Context, name: QueueArg,
    concurrency: Annotated[int | None, typer.Option(
        metavar="N", help="Runs of the queue executing at once, across all workers.")] = None,
    per_key_concurrency: Annotated[int | None, typer.Option(
        metavar="N", help="Runs executing at once per concurrency key.")] = None,
    rate_limit: Annotated[int | None, typer.Option(
        metavar="N", help="Run starts per --rate-period.")] = None,
    rate_period: Annotated[float, typer.Option(
        metavar="SECONDS", help="The period of --rate-limit (default 1).")] = 1.0,
    clear: Annotated[list[Clearable] | None, typer.Option(
        metavar="LIMIT", help="Remove a limit (concurrency, per-key-concurrency, "
        "rate-limit); repeatable.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create the queue or change the limits given (the others stay)."""
    limits: QueueLimits = {}
    if concurrency is not None:
        limits["concurrency"] = concurrency
    if per_key_concurrency is not None:
        limits["per_key_concurrency"] = per_key_concurrency
    if rate_limit is not None:
        limits["rate_limit"] = (rate_limit, rate_period)
    cleared = set(clear or ())
    if Clearable.CONCURRENCY in cleared:
        limits["concurrency"] = None
    if Clearable.PER_KEY_CONCURRENCY in cleared:
        limits["per_key_concurrency"] = None
    if Clearable.RATE_LIMIT in cleared:
        limits["rate_limit"] = None
    changes: dict[str, Any] = dict(limits)
    if rate_limit is not None:
        changes["rate_limit"] = RateLimit(rate_limit, rate_period)
    _act(ctx, lambda lf: lf.engine.queues.change(name, changes, actor="cli"),
         lambda c: c.set_queue(name, **limits), as_json)


@app.command("pause")
def pause_command(ctx: typer.Context, name: QueueArg, as_json: JsonFlag = False) -> None:
    """Hold every run of the queue until `resume`."""
    _act(ctx, lambda lf: lf.engine.queues.pause(name, actor="cli"),
         lambda c: c.pause_queue(name), as_json)


@app.command("resume")
def resume_command(ctx: typer.Context, name: QueueArg, as_json: JsonFlag = False) -> None:
    """Let the queue's runs be claimed again."""
    _act(ctx, lambda lf: lf.engine.queues.resume(name, actor="cli"),
         lambda c: c.resume_queue(name), as_json)


def _act(ctx: typer.Context, action: Callable[[Ledgerflow], QueueInfo],
         remote: Callable[[Client], QueueInfo], as_json: bool) -> None:
    """`remote` through the server's API with `--server`, else `action` on the database."""
    if server_of(ctx) is not None:
        with user_errors(), client_of(ctx) as client:
            info = remote(client)
    else:
        with user_errors():
            lf = open_app(ctx)
            try:
                info = action(lf)
            finally:
                lf.close()
    if as_json:
        console.print_json(json.dumps(info.to_wire()))
    else:
        _show([info], False)
