"""`ledgerflow relay`: publish outbox rows to Kafka (or the JSON-lines sink) until stopped."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerflow.cli.common import console, open_settings
from ledgerflow.cli.support import open_database, user_errors
from ledgerflow.observability.logs import configure_logging
from ledgerflow.settings import Settings


def relay_target(settings: Settings) -> str:
    """Where the relay publishes: the Kafka cluster and topic, or the JSON-lines file."""
    if settings.kafka_bootstrap:
        return f"Kafka {settings.kafka_bootstrap}, topic {settings.topic}"
    return f"the JSON-lines file {Path(settings.sink_path).resolve()}"


def build_relay(settings: Settings, *, batch_size: int = 500) -> Any:
    """The relay `relay` runs: settings -> engine, publisher, topics, attempts, faults,
    retention of published rows."""
    from ledgerflow import outbox

    return outbox.Relay(open_database(settings),
                        outbox.publisher_from_settings(settings), batch_size=batch_size,
                        max_attempts=settings.outbox_max_attempts,
                        dead_letter_topic=settings.dlq_topic, on_dead=settings.outbox_on_dead,
                        fault_point=settings.fault_points(),
                        retention=settings.outbox_retention())


def relay_command(
    batch_size: Annotated[int, typer.Option(min=1, metavar="N",
                                            help="Outbox rows claimed per batch.")] = 500,
    once: Annotated[bool, typer.Option("--once", help="Relay one batch, print what "
                                       "happened to it, and exit.")] = False,
    metrics_port: Annotated[int, typer.Option(
        min=0, max=65535, metavar="PORT", help="Serve GET /metrics on this port (0: do "
        "not).")] = 0,
) -> None:
    """Publish the outbox until stopped. To Kafka when LEDGERFLOW_KAFKA_BOOTSTRAP is set,
    else to the JSON-lines file LEDGERFLOW_SINK_PATH; until Ctrl-C or SIGTERM."""
    with user_errors():
        settings = open_settings()
        relay = build_relay(settings, batch_size=batch_size)
    configure_logging(settings)
    if metrics_port:
        from ledgerflow.cli.observe import serve_store_metrics
        serve_store_metrics(settings, metrics_port)
    target = relay_target(settings)
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
