"""`ledgerflow doctor` and `ledgerflow metrics`: operating a deployment from a shell.

`doctor` prints the health checks (`observability.doctor`) as a table, or the JSON
report with `--json`, and exits 0 (ok), 1 (warn) or 2 (fail). `metrics` prints the
store's Prometheus families once, or serves them on `--port` until stopped (for a host
that runs no API; `worker` and `relay` take `--metrics-port` for their own counters).
"""

from __future__ import annotations

import json
import threading
from typing import Annotated

import typer
from rich.table import Table

from ledgerflow.cli.common import console, open_settings
from ledgerflow.cli.support import fail, open_database, user_errors
from ledgerflow.eventstore.database import display_url, missing_file
from ledgerflow.settings import Settings

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def doctor_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
) -> None:
    """Check the store, schema, queue, leases, outbox, projections and clocks; exit 0 (ok),
    1 (warn) or 2 (fail)."""
    from ledgerflow._app import build_store
    from ledgerflow.eventstore import create_engine
    from ledgerflow.observability.doctor import diagnose

    with user_errors():
        settings = open_settings()
        absent = missing_file(settings.database_url)
        if absent is not None:  # reading never creates: a fail, not a new empty file
            fail(f"no database at {display_url(settings.database_url)} ({absent.resolve()} does "
                 "not exist); `ledgerflow db upgrade` creates it", 2)
        db = create_engine(settings.database_url)
        try:
            report = diagnose(build_store(db, settings), settings)
        finally:
            db.dispose()
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        table = Table("check", "status", "value", "message", title=f"ledgerflow doctor: "
                      f"[{_STYLE[report.status]}]{report.status}[/]")
        for c in report.checks:
            table.add_row(c.name, f"[{_STYLE[c.status]}]{c.status}[/]",
                          "" if c.value is None else str(c.value), c.message)
        console.print(table)
    raise typer.Exit(report.exit_code)


def serve_store_metrics(settings: Settings, port: int, host: str = "0.0.0.0") -> None:
    """Serve the store's metrics on `port` from a daemon thread, for the process's life."""
    from ledgerflow._app import build_store
    from ledgerflow.eventstore import create_engine
    from ledgerflow.observability.metrics import Metrics, serve_metrics

    metrics = Metrics(build_store(create_engine(settings.database_url), settings),
                      cache_seconds=settings.metrics_cache_seconds)
    serve_metrics(metrics, port, host)


def metrics_command(
    port: Annotated[int, typer.Option(min=0, max=65535, metavar="PORT",
                                      help="Serve GET /metrics on this port until stopped "
                                      "(0: print once and exit).")] = 0,
    host: Annotated[str, typer.Option(metavar="ADDRESS",
                                      help="Address to listen on.")] = "0.0.0.0",
) -> None:
    """The Prometheus metrics read from the store (runs, queue, outbox, projections)."""
    from ledgerflow._app import build_store
    from ledgerflow.observability.metrics import Metrics, serve_metrics

    with user_errors():
        settings = open_settings()
        db = open_database(settings)
        metrics = Metrics(build_store(db, settings),
                          cache_seconds=settings.metrics_cache_seconds)
        if not port:
            print(metrics.render().decode(), end="")
            db.dispose()
            return
        server = serve_metrics(metrics, port, host)
    console.print(f"serving metrics on http://{host}:{port}/metrics (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        db.dispose()
