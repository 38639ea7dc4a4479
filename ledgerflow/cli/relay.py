"""`ledgerflow relay`: publish outbox rows to Kafka (or the JSON-lines sink) until stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any

from ledgerflow.cli.common import console, open_settings
from ledgerflow.observability.logs import configure_logging
from ledgerflow.settings import Settings


def build_relay(settings: Settings, *, batch_size: int = 500) -> Any:
    """The relay `relay` runs: settings -> engine, publisher, topics, attempts, faults."""
    from ledgerflow import outbox
    from ledgerflow.eventstore import create_engine

    return outbox.Relay(create_engine(settings.database_url),
                        outbox.publisher_from_settings(settings), batch_size=batch_size,
                        max_attempts=settings.outbox_max_attempts,
                        dead_letter_topic=settings.dlq_topic, on_dead=settings.outbox_on_dead,
                        fault_point=settings.fault_points())


def relay_command(batch_size: int = 500, once: bool = False, metrics_port: int = 0) -> None:
    """Relay outbox rows until SIGINT/SIGTERM (or one batch with `once`).

    Register with typer as `app.command("relay")(relay_command)`; the parameters
    become `--batch-size N`, `--once` and `--metrics-port N` (serve GET /metrics).
    """
    settings = open_settings()
    configure_logging(settings)
    if metrics_port:
        from ledgerflow.cli.observe import serve_store_metrics
        serve_store_metrics(settings, metrics_port)
    relay = build_relay(settings, batch_size=batch_size)
    target = settings.kafka_bootstrap or f"sink {settings.sink_path}"
    try:
        if once:
            stats = relay.run_once()
            console.print(f"published {stats.published}, retrying {stats.retried}, "
                          f"dead {stats.dead}")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"relaying outbox to {target} (Ctrl-C stops)")
        relay.run_forever(stop)
    finally:
        relay.publisher.close()
