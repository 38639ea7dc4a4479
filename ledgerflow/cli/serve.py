"""`ledgerflow serve`: the API, worker threads, the outbox relay and the catch-up
projector in one process, each switchable off; SIGTERM/SIGINT stop it gracefully
(the API stops accepting, workers finish the step in hand, the relay finishes
its batch), and the process exits 0."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from ledgerflow.cli.supervise import Supervisor, worker_children
from ledgerflow.observability.children import ChildrenDirectory
from ledgerflow.projections import Projector, default_projections, rebuild_stale

log = logging.getLogger("ledgerflow.serve")


@dataclass(frozen=True)
class ServeOptions:
    """What `serve` runs."""

    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 4
    poll_interval: float = 0.5
    api: bool = True
    worker: bool = True
    relay: bool = True
    projector: bool = True
    worker_processes: int = 0
    """> 0: the worker runs as that many child processes under a `Supervisor`."""


class Services:
    """The background parts of `serve` (worker, relay, projector) started and stopped together."""

    def __init__(self, lf: Ledgerflow, options: ServeOptions) -> None:
        self.lf, self.options = lf, options
        self.stop_event = threading.Event()
        in_process = options.worker and not options.worker_processes
        self.worker = lf.worker(options.threads, options.poll_interval) if in_process \
            else None
        self.supervisor: Supervisor | None = None
        self.counters: ChildrenDirectory | None = None
        if options.worker and options.worker_processes:
            if lf.metrics is not None:  # the API's /metrics sums the children's counters
                self.counters = ChildrenDirectory()
                lf.metrics.count_children(self.counters)
            command, env = worker_children(lf.settings.workflows, options.threads,
                                           options.poll_interval, self.counters)
            self.supervisor = Supervisor(command, options.worker_processes, log.info, env)
        self._threads: list[threading.Thread] = []
        self._relay = lf.relay() if options.relay else None

    def start(self) -> list[str]:
        """Start what is switched on; returns their names."""
        running = []
        if self.worker is not None:
            self.worker.start()
            running.append(f"worker ({self.options.threads} threads)")
        if self.supervisor is not None:
            self.supervisor.start()
            running.append(f"worker ({self.options.worker_processes} processes)")
        if self._relay is not None:
            self._spawn("ledgerflow-relay", self._relay.run_forever, self.stop_event)
            running.append("relay")
        if self.options.projector:
            self._spawn("ledgerflow-projector", self._project)
            running.append("projector")
        archiver = self.lf.archiver()
        if archiver.policy.enabled:  # retention is off by default
            self._spawn("ledgerflow-archiver", archiver.run_forever, self.stop_event,
                        self.lf.settings.archive_interval_seconds)
            running.append("archiver")
        return running

    def _spawn(self, name: str, target: Callable[..., object], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _project(self) -> None:
        """Rebuild projections whose version changed, then keep catch-up ones current.

        The rebuild runs here, in the background: the API keeps reading the old
        tables and inline writes keep landing in them until the atomic swap.
        """
        try:
            report = rebuild_stale(self.lf.store, default_projections(), clock=self.lf.clock)
            if report is not None:
                log.info("rebuilt stale projections: %s", report)
        except Exception:
            log.exception("background rebuild of stale projections failed")
        projectors = [Projector(self.lf.store, p, clock=self.lf.clock, faults=self.lf.faults)
                      for p in default_projections() if not p.inline]
        while not self.stop_event.is_set():
            applied = 0
            for projector in projectors:
                try:
                    applied += projector.run_once()
                except Exception:
                    log.exception("projector %s failed; retrying", projector.projection.name)
            if applied == 0:
                self.stop_event.wait(0.5)

    def stop(self) -> None:
        """Finish what is in hand and stop every part."""
        self.stop_event.set()
        if self.worker is not None:
            self.worker.stop(graceful=True)
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.counters is not None:
            self.counters.remove()
        for thread in self._threads:
            thread.join(30)
        if self._relay is not None:
            self._relay.publisher.close()


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` and listening (`OSError` when it cannot be)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=2048)


def serve(lf: Ledgerflow, options: ServeOptions, announce: Callable[[str], None] = print,
          sock: socket.socket | None = None) -> None:
    """Run until SIGTERM/SIGINT, then stop gracefully. With the API on, `sock` is the
    listening socket it serves (bound by the caller, so a port in use fails before
    anything starts; default: bound here)."""
    if options.api and sock is None:
        sock = listen(options.host, options.port)
    server = None if sock is None else uvicorn.Server(uvicorn.Config(
        create_app(lf), log_level="warning", access_log=False, lifespan="off"))
    # Our handlers first: uvicorn captures the signals while it serves, restores
    # these afterwards and re-raises what it caught, which must land here (and not
    # kill the process) so the worker and relay below still stop gracefully. A signal
    # before uvicorn captures them stops it as soon as it starts.
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()
        if server is not None:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    _run(lf, options, announce, server, sock, stop)
    announce("ledgerflow stopped")


def _run(lf: Ledgerflow, options: ServeOptions, announce: Callable[[str], None],
         server: uvicorn.Server | None, sock: socket.socket | None,
         stop: threading.Event) -> None:
    services = Services(lf, options)
    running = services.start()
    try:
        if server is not None and sock is not None:
            host, port = sock.getsockname()[:2]
            announce(f"ledgerflow serving {_url(host, port)} with "
                     f"{', '.join(['api', *running])}")
            server.run(sockets=[sock])
        else:
            announce(f"ledgerflow running {', '.join(running) or 'nothing'}")
            while not stop.wait(0.5):
                pass
    finally:
        services.stop()
        lf.close()


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
