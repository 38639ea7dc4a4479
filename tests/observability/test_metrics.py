"""Prometheus metrics: every family with its labels, counters moved by runs that end
here, and the store's gauges (leases expired until reaped, outbox age growing while
nothing publishes)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from ledgerflow.runtime.executor import claim_next
from ledgerflow.testing import FakeClock

FAMILIES = {
    "ledgerflow_runs": {"status"},
    "ledgerflow_queue_depth": {"queue"},
    "ledgerflow_runs_finished": {"workflow", "status"},
    "ledgerflow_step_duration_seconds": {"workflow", "step", "outcome"},
    "ledgerflow_outbox_pending": set(),
    "ledgerflow_outbox_dead": set(),
    "ledgerflow_outbox_oldest_pending_seconds": set(),
    "ledgerflow_projection_lag_events": {"projection"},
    "ledgerflow_runs_overdue": set(),
    "ledgerflow_leases_expired": set(),
}


def scrape(lf: Ledgerflow) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of `lf`'s metrics, keyed by (sample name, labels)."""
    assert lf.metrics is not None
    text = lf.metrics.render().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(lf: Ledgerflow, name: str, **labels: str) -> float:
    return scrape(lf).get((name, frozenset(labels.items())), 0.0)


def test_get_metrics_serves_every_family_with_its_labels(lf: Ledgerflow) -> None:
    lf.engine.trigger("greet", "ada")
    lf.engine.tick()
    with TestClient(create_app(lf)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name, labels in FAMILIES.items():
        assert name in families, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
    assert {s.labels["status"] for s in families["ledgerflow_runs"].samples} >= {
        "pending", "running", "suspended", "completed", "failed", "canceled"}


def test_a_completed_run_moves_the_finished_counter_and_step_histogram(
        lf: Ledgerflow, clock: FakeClock) -> None:
    lf.engine.trigger("greet", "ada")
    run = lf.engine.trigger("fragile", {"ok": False})
    assert value(lf, "ledgerflow_runs", status="pending") == 2
    lf.engine.tick()
    assert lf.engine.state(run.run_id).status == "failed"
    assert value(lf, "ledgerflow_runs_finished_total", workflow="greet",
                 status="completed") == 1
    assert value(lf, "ledgerflow_runs_finished_total", workflow="fragile", status="failed") == 1
    assert value(lf, "ledgerflow_step_duration_seconds_count", workflow="greet", step="greet",
                 outcome="completed") == 1
    assert value(lf, "ledgerflow_step_duration_seconds_count", workflow="fragile",
                 step="second", outcome="failed") >= 1
    assert value(lf, "ledgerflow_runs", status="completed") == 1
    assert value(lf, "ledgerflow_runs", status="failed") == 1
    assert value(lf, "ledgerflow_runs", status="pending") == 0


def test_a_killed_workers_lease_shows_as_expired_until_reaped(
        lf: Ledgerflow, clock: FakeClock) -> None:
    lf.engine.trigger("greet", "ada")
    assert value(lf, "ledgerflow_queue_depth", queue="default") == 1
    assert claim_next(lf.engine.runtime)  # claimed, then the worker dies: no execution
    assert value(lf, "ledgerflow_queue_depth", queue="default") == 0
    assert value(lf, "ledgerflow_leases_expired") == 0
    clock.advance(timedelta(seconds=lf.settings.lease_seconds + 1))
    assert value(lf, "ledgerflow_leases_expired") == 1
    assert value(lf, "ledgerflow_queue_depth", queue="default") == 1
    assert lf.engine.reap() == 1
    assert value(lf, "ledgerflow_leases_expired") == 0


def test_an_unclaimed_due_run_becomes_overdue(lf: Ledgerflow, clock: FakeClock) -> None:
    lf.engine.trigger("greet", "ada")
    assert value(lf, "ledgerflow_runs_overdue") == 0
    clock.advance(timedelta(seconds=lf.settings.doctor_overdue_warn_seconds + 1))
    assert value(lf, "ledgerflow_runs_overdue") == 1
    lf.engine.tick()
    assert value(lf, "ledgerflow_runs_overdue") == 0


def test_outbox_oldest_pending_age_grows_while_the_broker_is_down(
        lf: Ledgerflow, clock: FakeClock) -> None:
    from ledgerflow.outbox import KafkaPublisher, Relay
    from tests._broker import free_port
    lf.engine.trigger("greet", "ada")
    pending = value(lf, "ledgerflow_outbox_pending")
    assert pending >= 1
    first = value(lf, "ledgerflow_outbox_oldest_pending_seconds")
    stopped = Relay(lf.db, KafkaPublisher(f"127.0.0.1:{free_port()}", timeout_s=1), clock=clock)
    try:
        stopped.run_once()  # nothing listens on the broker's port
    finally:
        stopped.publisher.close()
    clock.advance(timedelta(seconds=90))
    assert value(lf, "ledgerflow_outbox_pending") == pending
    assert value(lf, "ledgerflow_outbox_oldest_pending_seconds") >= first + 90
    lf.relay().run_once()
    assert value(lf, "ledgerflow_outbox_pending") == 0
    assert value(lf, "ledgerflow_outbox_oldest_pending_seconds") == 0


def test_gauges_are_read_from_the_store_not_from_this_process(
        lf: Ledgerflow, settings: object, clock: FakeClock) -> None:
    from ledgerflow.settings import Settings
    from tests.api._workflows import registry
    assert isinstance(settings, Settings)
    other = Ledgerflow.open(settings, registry=registry(), clock=clock, upgrade=False)
    try:
        other.engine.trigger("greet", "ada")
        other.engine.tick()  # another "process" executes the run
    finally:
        other.close()
    assert value(lf, "ledgerflow_runs", status="completed") == 1
    assert value(lf, "ledgerflow_runs_finished_total", workflow="greet",
                 status="completed") == 0  # counters are per process


def test_building_the_metrics_reads_nothing_from_the_store(tmp_path: object) -> None:
    from ledgerflow.eventstore import EventStore, create_engine
    from ledgerflow.observability.metrics import Metrics
    db = create_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db")
    try:
        metrics = Metrics(EventStore(db))  # a process starts even if the store is down
        assert metrics.registry is not None
    finally:
        db.dispose()


def test_a_host_without_the_api_serves_metrics_on_its_port(lf: Ledgerflow) -> None:
    import httpx

    from ledgerflow.observability.metrics import serve_metrics
    from tests._broker import free_port
    assert lf.metrics is not None
    lf.engine.trigger("greet", "ada")
    lf.engine.tick()
    port = free_port()
    server = serve_metrics(lf.metrics, port, "127.0.0.1")
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
    assert 'ledgerflow_runs_finished_total{status="completed",workflow="greet"} 1.0' in text
    assert 'ledgerflow_runs{status="completed"} 1.0' in text


def test_a_scrape_reads_the_store_in_one_statement(lf: Ledgerflow, clock: FakeClock) -> None:
    """One round trip per scrape (a query per gauge made a scrape wait for the database
    once per gauge), and the figures it reads stay right."""
    import sqlalchemy as sa

    lf.engine.trigger("greet", "ada")
    lf.engine.trigger("greet", "bob")
    clock.advance(timedelta(minutes=5))  # due and unclaimed past the overdue threshold
    statements: list[str] = []

    def count(*args: object) -> None:
        if not str(args[2]).startswith("BEGIN"):  # SQLite's, in process: no round trip
            statements.append(str(args[2]))

    sa.event.listen(lf.store.engine, "before_cursor_execute", count)
    try:
        samples = scrape(lf)
    finally:
        sa.event.remove(lf.store.engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements
    assert samples[("ledgerflow_runs", frozenset({("status", "pending")}))] == 2
    assert samples[("ledgerflow_queue_depth", frozenset({("queue", "default")}))] == 2
    assert samples[("ledgerflow_runs_overdue", frozenset())] == 2
    assert samples[("ledgerflow_leases_expired", frozenset())] == 0
