"""Run the bundled example end to end on the embedded default and show what happened.

SQLite in a directory (temporary unless given), the JSON-lines sink unless a broker
is configured; an in-process worker; the demo sends the approval signals itself;
the relay drains the outbox before it reports. Everything it starts, it stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from ledgerflow._app import Ledgerflow
from ledgerflow.cli.common import SHORT_ID
from ledgerflow.cli.runs import history_table, runs_table
from ledgerflow.demo.workflows import CHECKOUT, CHECKOUT_FAILING
from ledgerflow.domain.errors import LedgerflowError
from ledgerflow.domain.state import RunState
from ledgerflow.outbox import status as outbox_status
from ledgerflow.projections import COMPENSATE_SUFFIX, queries
from ledgerflow.settings import Settings

DEADLINE_S = 25.0


class DemoStuck(LedgerflowError):
    code = "demo_stuck"
    http_status = 500


@dataclass
class DemoReport:
    """What the demo did: its runs, their final statuses, and where the events went."""

    database_url: str
    checkout_run: str
    failing_run: str
    statuses: dict[str, str] = field(default_factory=dict)
    events_published: int = 0
    destination: str = ""
    sink_lines: int | None = None


def demo_settings(base: Settings, directory: Path) -> Settings:
    """`base` with the database and the sink inside `directory`."""
    return base.model_copy(update={
        "database_url": f"sqlite:///{directory / 'ledgerflow.db'}",
        "sink_path": str(directory / "events.jsonl"),
    })


def run_demo(settings: Settings, out: Console) -> DemoReport:
    """Run both checkouts to the end, drain the outbox, print runs, history, sink."""
    lf = Ledgerflow.open(settings)
    try:
        report = _drive(lf, out)
        _drain(lf, report)
        _show(lf, report, out)
        return report
    finally:
        lf.close()


def _drive(lf: Ledgerflow, out: Console) -> DemoReport:
    engine = lf.engine
    worker = lf.worker(threads=2, poll_interval=0.05).start()
    try:
        ok = engine.trigger(CHECKOUT, {"bookingId": "B-1001", "amount": 129.0,
                                       "email": "ada@example.com", "coolOffSeconds": 1},
                            tenant_meta={"tenantId": "acme"}, tags=["demo"]).run_id
        bad = engine.trigger(CHECKOUT_FAILING, {"bookingId": "B-1002", "amount": 75.5,
                                                "coolOffSeconds": 1},
                             tenant_meta={"tenantId": "acme"}, tags=["demo"]).run_id
        out.print(f"triggered {CHECKOUT} {_short(ok)} and {CHECKOUT_FAILING} {_short(bad)}",
                  highlight=False)
        for run_id in (ok, bad):
            _await(lf, run_id, lambda s: s.status.value == "suspended"
                   and s.waitpoint is not None and s.waitpoint.kind == "signal")
            engine.signal(run_id, "approval", "ops@example.com", actor="demo")
            out.print(f"sent signal 'approval' to {_short(run_id)}", highlight=False)
        report = DemoReport(lf.settings.database_url, ok, bad)
        for run_id in (ok, bad):
            report.statuses[run_id] = _await(lf, run_id, lambda s: s.is_terminal).status.value
        return report
    finally:
        worker.stop(graceful=True, timeout=10)


def _await(lf: Ledgerflow, run_id: str, done: Callable[[RunState], bool]) -> RunState:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        state = lf.engine.state(run_id)
        if done(state):
            return state
        time.sleep(0.05)
    raise DemoStuck(f"run {run_id} did not get there within {DEADLINE_S:.0f}s "
                    f"(status {lf.engine.state(run_id).status.value})")


def _short(run_id: str) -> str:
    """The run id as the tables show it (every command accepts it as a prefix)."""
    return run_id[:SHORT_ID]


def _drain(lf: Ledgerflow, report: DemoReport) -> None:
    """Relay every outbox row (to Kafka, or to the JSON-lines sink)."""
    relay = lf.relay(base_delay=0.1, max_delay=1.0)
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            stats = relay.run_once()
            report.events_published += stats.published
            if stats.published == 0 and outbox_status(lf.db).pending == 0:
                break
            if stats.published == 0:
                time.sleep(0.1)
    finally:
        relay.publisher.close()
    settings = lf.settings
    if settings.kafka_bootstrap:
        report.destination = f"Kafka {settings.kafka_bootstrap}, topic {settings.topic}"
    else:
        sink = Path(settings.sink_path)
        report.destination = str(sink)
        report.sink_lines = sum(1 for _ in sink.open()) if sink.exists() else 0


def _show(lf: Ledgerflow, report: DemoReport, out: Console) -> None:
    with lf.db.connect() as conn:
        records, _ = queries.list_runs(conn, limit=20)
    out.print()
    out.print(runs_table(records))
    out.print()
    out.print(history_table(queries.history(lf.store, report.checkout_run),
                            title=f"history of {CHECKOUT} run {_short(report.checkout_run)}"))
    out.print()
    with lf.db.connect() as conn:
        journal = queries.get_journal(conn, report.failing_run)
    undone = [j.step_id.removesuffix(COMPENSATE_SUFFIX) for j in journal
              if j.step_id.endswith(COMPENSATE_SUFFIX) and j.status == "completed"]
    out.print(f"{CHECKOUT_FAILING} {_short(report.failing_run)}: "
              f"{report.statuses[report.failing_run]}, compensated: "
              f"{', '.join(undone) or 'nothing'}", highlight=False)
    where = report.destination
    if report.sink_lines is not None:
        where = f"{where} ({report.sink_lines} lines)"
    out.print(f"{report.events_published} events published to {where}", highlight=False)
    out.print(f"database: {report.database_url}", highlight=False)
