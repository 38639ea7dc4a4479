"""`ledgerflow serve` and `ledgerflow worker`: the processes that run for good.

Both upgrade the database schema when they start (as DBOS does at launch: a new
release's migrations apply as its servers start, under the migration lock, so
several starting at once is safe) and say so in their first line, creating a SQLite
file that does not exist yet. Every other command only reads a database that
`ledgerflow db upgrade` (or one of these) made, and never creates one.

`serve` binds its port before it starts anything (a port in use is one error line),
prints its URL once bound, and warns when no workflows are loaded or the API is
open to anyone. `worker` stops on Ctrl-C or SIGTERM after the steps in hand; a
second one stops it at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Annotated

import typer

from ledgerflow._app import Ledgerflow
from ledgerflow.cli.common import console
from ledgerflow.cli.relay import relay_target
from ledgerflow.cli.supervise import (
    Supervisor,
    default_processes,
    stop_when_orphaned,
    worker_children,
)
from ledgerflow.cli.support import cli_settings, fail, user_errors, warn
from ledgerflow.domain.errors import InvalidRequest
from ledgerflow.eventstore.database import display_url, missing_file
from ledgerflow.migrations import upgrade_all
from ledgerflow.observability.children import ChildrenDirectory
from ledgerflow.observability.logs import configure_logging
from ledgerflow.observability.metrics import serve_metrics
from ledgerflow.runtime.worker import Worker

Threads = Annotated[int, typer.Option(min=1, metavar="N",
                                      help="Runs executed at once (worker threads).")]
PollInterval = Annotated[float, typer.Option(
    min=0.01, metavar="SECONDS",
    help="How often to look for runs that became due (timers, retries, runs made due by "
    "other processes where no notification reaches this one).")]
NO_WORKFLOWS = "pass --workflows MODULE (or a file such as booking.py) or set LEDGERFLOW_WORKFLOWS"


def say(line: str) -> None:
    """One line of what a process does, as it is (never wrapped, no markup)."""
    console.print(line, highlight=False, soft_wrap=True, markup=False)


def start_app(ctx: typer.Context) -> Ledgerflow:
    """Open the app on the command line's settings and upgrade its schema, saying so."""
    settings = cli_settings(ctx)
    settings.token_tenants()  # a malformed LEDGERFLOW_API_TOKENS fails here, clearly
    created = missing_file(settings.database_url) is not None
    lf = Ledgerflow.open(settings, upgrade=False)
    try:
        applied = upgrade_all(lf.db)
    except BaseException:
        lf.close()
        raise
    configure_logging(settings)  # once the settings and the database are known good
    state = f"schema upgraded ({len(applied)} migrations applied)" if applied \
        else "schema up to date"
    say(f"database {display_url(settings.database_url)}: {'created, ' if created else ''}"
        f"{state}")
    return lf


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, metavar="PORT",
                                      help="Port to listen on (0: any free port).")] = 8000,
    threads: Threads = 4,
    poll_interval: PollInterval = 0.5,
    no_api: Annotated[bool, typer.Option("--no-api", help="Do not serve HTTP.")] = False,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run no worker.")] = False,
    no_relay: Annotated[bool, typer.Option("--no-relay", help="Run no outbox relay.")] = False,
    no_projector: Annotated[bool, typer.Option(
        "--no-projector", help="Run no catch-up projector (and no rebuild of stale "
        "projections).")] = False,
    worker_processes: Annotated[int, typer.Option(
        min=0, metavar="N", help="Run the worker as N processes under a supervisor "
        "(restarts one that dies) instead of threads of this process (0).")] = 0,
) -> None:
    """Serve the HTTP API, with a worker, relay and projector. All in one process, until
    Ctrl-C or SIGTERM (the steps in hand finish first). Upgrades the database schema
    first, and says so."""
    from ledgerflow.cli.serve import ServeOptions, listen, serve

    options = ServeOptions(host=host, port=port, threads=threads, poll_interval=poll_interval,
                           api=not no_api, worker=not no_worker, relay=not no_relay,
                           projector=not no_projector, worker_processes=worker_processes)
    with user_errors():
        lf = start_app(ctx)
    try:
        sock = None
        if options.api:
            try:
                sock = listen(host, port)
            except OSError as exc:
                fail(f"cannot listen on {host}:{port}: "
                     f"{os.strerror(exc.errno) if exc.errno else exc}")
        _announce_parts(lf, options.api, options.worker, options.relay)
    except BaseException:
        lf.close()
        raise
    serve(lf, options, announce=say, sock=sock)


def _announce_parts(lf: Ledgerflow, api: bool, worker: bool, relay: bool) -> None:
    """What `serve` warns about and where its relay writes."""
    if (api or worker) and not lf.engine.registry.names():
        warn(f"no workflows are loaded: {NO_WORKFLOWS}; until then triggers are refused "
             "and the worker has nothing to run")
    if api and not lf.settings.token_tenants():
        warn("the API is open to whoever reaches it: set LEDGERFLOW_API_TOKENS "
             "(token=tenant pairs) to require a bearer token")
    if relay:
        say(f"relay: publishing the outbox to {relay_target(lf.settings)}")


def worker(
    ctx: typer.Context, threads: Threads = 4, poll_interval: PollInterval = 0.5,
    metrics_port: Annotated[int, typer.Option(
        min=0, max=65535, metavar="PORT", help="Serve GET /metrics on this port (0: do "
        "not); with several processes, their counters summed on this one port.")] = 0,
    metrics_host: Annotated[str, typer.Option(
        metavar="ADDRESS", help="Address --metrics-port listens on.")] = "0.0.0.0",
    processes: Annotated[int | None, typer.Option(
        min=1, metavar="N", help="Worker processes under one supervisor, which restarts "
        "one that dies (default: one per core on PostgreSQL, 1 on SQLite).")] = None,
) -> None:
    """Execute due runs until stopped. Ctrl-C or SIGTERM lets the steps in hand finish;
    a second one stops at once (their runs are taken up again when their lease
    expires). Upgrades the database schema first, and says so."""
    with user_errors():
        lf = start_app(ctx)
        if not lf.engine.registry.names():
            lf.close()
            raise InvalidRequest(f"no workflows are loaded: {NO_WORKFLOWS}")
    count = processes or default_processes(lf.settings.database_url)
    if count > 1:
        _supervise(lf, count, threads, poll_interval, (metrics_host, metrics_port))
        return
    try:
        w = lf.worker(threads, poll_interval)
        stop_on_signals(w, lf.settings.lease_seconds)  # before any thread starts
        stop_when_orphaned()  # a supervised child: stops when its supervisor is gone
        if metrics_port and lf.metrics is not None:
            serve_metrics(lf.metrics, metrics_port, metrics_host)
        say(f"worker {lf.engine.worker_id}: {threads} thread(s), workflows "
            f"{', '.join(lf.engine.registry.names())}")
        w.run()
        say("worker stopped")
    finally:
        lf.close()


def _supervise(lf: Ledgerflow, processes: int, threads: int, poll_interval: float,
               metrics_at: tuple[str, int]) -> None:
    """Run the worker as `processes` children; with a metrics port (`metrics_at`: host,
    port; 0: none), serve there the host's metrics: the store gauges and the
    children's counters, summed."""
    metrics_host, metrics_port = metrics_at
    metrics = lf.metrics if metrics_port else None
    counters = None if metrics is None else ChildrenDirectory()
    if counters is None:
        lf.close()  # nothing to read from the store: hold no connection
    try:
        if metrics is not None and counters is not None:
            metrics.count_children(counters)
            serve_metrics(metrics, metrics_port, metrics_host)
            say(f"metrics of the {processes} worker processes on "
                f"http://{metrics_host}:{metrics_port}/metrics")
        command, env = worker_children(lf.settings.workflows, threads, poll_interval,
                                       counters)
        code = Supervisor(command, processes, say, env).run()
    finally:
        if counters is not None:
            lf.close()
            counters.remove()
    if code:
        say("stopped at once: the runs in hand are taken up again when their lease expires")
        raise typer.Exit(code)
    say("worker stopped")


def stop_on_signals(w: Worker, lease_seconds: float) -> None:
    """On the first SIGINT/SIGTERM stop gracefully and say so; on the second, exit at once.

    Call from the main thread before the worker starts. A Python signal handler runs only
    in the main thread, and only once the kernel has handed the signal to that thread:
    a signal taken by another thread waits until the main thread wakes, which while it
    joins the worker threads is up to their timeout. So the signals are blocked here,
    in every thread started from now on too, and one watcher thread takes them with
    sigwait."""
    w.install_signal_handlers()
    graceful = signal.getsignal(signal.SIGINT)
    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)

    def watch() -> None:
        signum = signal.sigwait(stops)
        say("stopping: finishing the steps in hand (Ctrl-C again stops at once)")
        if callable(graceful):
            graceful(signum, None)
        signal.sigwait(stops)
        say(f"stopped at once: the runs in hand are taken up again when their lease expires "
            f"(within {lease_seconds:g}s)")
        sys.stdout.flush()
        os._exit(130)

    threading.Thread(target=watch, name="ledgerflow-signals", daemon=True).start()
