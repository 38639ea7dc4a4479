"""The CLI against a remote `ledgerflow serve` (`--server URL` or `LEDGERFLOW_SERVER`):
the run commands send their request to its HTTP API through `ledgerflow.client.Client`
instead of opening the database, and print what the local commands print.

Supported: `trigger` (with `--wait`), `signal`, `event`, `token`, `cancel`, `rerun`,
`resume`, `runs list|show|history`, `outbox dlq list|replay|discard`, `queues ...`,
`schedules ...`. Every other
command works on the database (or is the server itself) and refuses `--server` with a
one-line error (`refuse`). A run id may be a unique prefix, as locally (the server
resolves it); the `runs list` filters that name runs take whole ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import typer

from ledgerflow.cli.support import fail
from ledgerflow.client import Client
from ledgerflow.client import _calls as calls
from ledgerflow.projections import queries

SUPPORTED = ("trigger, signal, event, token, cancel, rerun, resume, runs list|show|history, "
             "outbox dlq list|replay|discard, queues, schedules")
LOCAL_ONLY = frozenset({"db", "projections", "worker", "relay", "serve", "demo", "doctor",
                        "metrics", "workflows", "archive", "audit"})
"""Top-level commands that never go to a server."""


def _root_obj(ctx: typer.Context | None) -> dict[str, Any]:
    root = ctx.find_root() if ctx is not None else None
    obj = root.obj if root is not None else None
    return obj if isinstance(obj, dict) else {}


def server_of(ctx: typer.Context | None) -> str | None:
    """The server the command line names (`--server`, else `LEDGERFLOW_SERVER`)."""
    server = _root_obj(ctx).get("server")
    return str(server) if server else None


def refuse(ctx: typer.Context | None, command: str) -> None:
    """Exit with a clear error if a server is named: `command` works on the database."""
    server = server_of(ctx)
    if server is not None:
        fail(f"`ledgerflow {command}` works on the database, not through a server: run it "
             f"without --server (and without LEDGERFLOW_SERVER; {server} was given). With "
             f"--server: {SUPPORTED}")


@contextmanager
def client_of(ctx: typer.Context | None) -> Iterator[Client]:
    """A client of the named server (with `--token` / `LEDGERFLOW_API_TOKEN`)."""
    obj = _root_obj(ctx)
    client = Client(str(obj["server"]), token=obj.get("token"))
    try:
        yield client
    except httpx.HTTPError as exc:
        fail(f"cannot reach the server {client.base_url}: {exc.__class__.__name__}: {exc}")
    finally:
        client.close()


def trigger(client: Client, workflow_id: str, data: Any, options: dict[str, Any],
            wait: float | None) -> tuple[queries.RunRecord, bool, bool]:
    """Trigger through the API: the run, whether it is new, whether it finished (when
    `wait` seconds were given)."""
    answer = client.request(calls.trigger(workflow_id, data, **options))
    record = answer.value
    finished = False
    if wait is not None:
        deadline = time.monotonic() + wait
        while record.status.value not in ("completed", "failed", "canceled") \
                and time.monotonic() < deadline:
            time.sleep(0.1)
            record = client.get(record.run_id)
        finished = record.status.value in ("completed", "failed", "canceled")
    return record, answer.created, finished


def deliver(client: Client, send: Callable[[Client], queries.RunRecord]
            ) -> tuple[queries.RunRecord, bool]:
    """Send a signal or event; the run after it, and whether the run kept it for later
    (it is still suspended, at another waitpoint)."""
    record = send(client)
    return record, record.status.value == "suspended"
