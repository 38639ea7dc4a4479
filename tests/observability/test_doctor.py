"""`diagnose` (doctor, /api/health/details): each check driven to warn or fail, with
the figure and the next thing to do."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow._app import Ledgerflow, build_store
from ledgerflow.api import create_app
from ledgerflow.domain import events as ev
from ledgerflow.eventstore import EventStore, NewEvent, StreamAppend, create_engine
from ledgerflow.observability import doctor
from ledgerflow.observability.doctor import NAMES, Check, Report, diagnose
from ledgerflow.observability.store_figures import read_figures
from ledgerflow.outbox._schema import DEAD, outbox
from ledgerflow.projections import Projector, RunViews
from ledgerflow.runtime.executor import claim_next
from ledgerflow.settings import Settings
from ledgerflow.testing import FakeClock


def check(lf: Ledgerflow, name: str, clock: FakeClock) -> Check:
    report = diagnose(lf.store, lf.settings, clock)
    return next(c for c in report.checks if c.name == name)


def in_step_with_the_database(clock: FakeClock) -> None:
    """The fake clock at the real time again: opening the app may have taken longer than
    the skew threshold on a loaded machine."""
    clock.set(datetime.now(UTC))


def test_a_quiet_store_is_ok_with_every_named_check(lf: Ledgerflow, clock: FakeClock) -> None:
    in_step_with_the_database(clock)
    report = diagnose(lf.store, lf.settings, clock)
    assert [c.name for c in report.checks] == list(NAMES)
    assert report.status == "ok" and report.exit_code == 0, report.to_json()
    assert set(report.to_json()["checks"][0]) == {"name", "status", "value", "message"}


def test_an_unclaimed_run_warns_then_fails_naming_the_worker(
        lf: Ledgerflow, clock: FakeClock) -> None:
    lf.engine.trigger("greet", "ada")
    clock.advance(timedelta(seconds=90))
    got = diagnose(lf.store, lf.settings, clock)
    overdue = next(c for c in got.checks if c.name == "runs_overdue")
    assert (overdue.status, overdue.value) == ("warn", 1)
    assert "1 run(s) overdue by up to 90 s" in overdue.message
    assert "ledgerflow worker" in overdue.message
    clock.advance(timedelta(seconds=600))
    failed = check(lf, "runs_overdue", clock)
    assert failed.status == "fail"
    assert diagnose(lf.store, lf.settings, clock).exit_code == 2
    assert check(lf, "clock_skew", FakeClock(datetime.now(UTC))).status == "ok"


def test_an_expired_lease_warns(lf: Ledgerflow, clock: FakeClock) -> None:
    lf.engine.trigger("greet", "ada")
    assert claim_next(lf.engine.runtime)  # the worker dies holding it
    assert check(lf, "leases_expired", clock).status == "ok"
    clock.advance(timedelta(seconds=lf.settings.lease_seconds + 1))
    expired = check(lf, "leases_expired", clock)
    assert (expired.status, expired.value) == ("warn", 1)
    assert "expired lease" in expired.message


def test_an_unpublished_outbox_row_warns_then_fails(lf: Ledgerflow, clock: FakeClock) -> None:
    lf.engine.trigger("greet", "ada")
    assert check(lf, "outbox_oldest_pending", clock).status == "ok"
    clock.advance(timedelta(seconds=61))
    assert check(lf, "outbox_oldest_pending", clock).status == "warn"
    clock.advance(timedelta(seconds=600))
    late = check(lf, "outbox_oldest_pending", clock)
    assert late.status == "fail" and late.value >= 600
    assert "ledgerflow relay" in late.message


def test_a_dead_letter_warns(lf: Ledgerflow, clock: FakeClock) -> None:
    lf.engine.trigger("greet", "ada")
    with lf.db.begin() as conn:  # what the relay does after max_attempts poison failures
        conn.execute(outbox.update().values(status=DEAD))
    dead = check(lf, "dead_letters", clock)
    assert dead.status == "warn" and dead.value >= 1
    assert "ledgerflow outbox dlq list" in dead.message


def test_projection_lag_past_the_threshold_warns(lf: Ledgerflow, clock: FakeClock) -> None:
    # The default projections are inline (never behind): the figure is set by hand.
    figures = read_figures(lf.store, clock, timedelta(seconds=60))
    assert doctor._lag(figures, lf.settings).status == "ok"
    behind = dataclasses.replace(figures, projection_lag={"run_views": 12_000})
    lagging = doctor._lag(behind, lf.settings)
    assert (lagging.status, lagging.value) == ("warn", 12_000)
    assert "run_views" in lagging.message


def test_a_catch_up_projection_behind_the_store_warns_until_it_catches_up(
        any_engine: SAEngine, clock: FakeClock) -> None:
    store = EventStore(any_engine, clock=clock)  # no inline hooks: a catch-up projection
    for i in range(4):
        run_id = f"lagging-{i}"
        store.append(StreamAppend(run_id, [NewEvent(ev.RunCreated(
            workflow_id="wf", workflow_version="1", input=i))]))
        store.append(StreamAppend(run_id, [NewEvent(ev.RunStarted())], expected_version=1))
    projection = RunViews(inline=False)
    settings = Settings(database_url="sqlite://", doctor_projection_lag_warn=5)
    lag = next(c for c in diagnose(store, settings, clock, [projection]).checks
               if c.name == "projection_lag")
    assert (lag.status, lag.value) == ("warn", 8)
    assert "run_views" in lag.message
    Projector(store, projection).run_until_caught_up()
    lag = next(c for c in diagnose(store, settings, clock, [projection]).checks
               if c.name == "projection_lag")
    assert (lag.status, lag.value) == ("ok", 0)


def test_a_skewed_clock_warns(lf: Ledgerflow, clock: FakeClock) -> None:
    clock.advance(timedelta(seconds=10))
    skew = check(lf, "clock_skew", clock)
    assert skew.status == "warn" and 8 <= skew.value <= 12
    assert "NTP" in skew.message


def test_thresholds_are_settings(lf: Ledgerflow, clock: FakeClock) -> None:
    lf.engine.trigger("greet", "ada")
    clock.advance(timedelta(seconds=30))
    strict = lf.settings.model_copy(update={"doctor_outbox_warn_seconds": 10.0,
                                            "doctor_clock_skew_warn_seconds": 60.0})
    report = diagnose(lf.store, strict, clock)
    assert next(c for c in report.checks if c.name == "outbox_oldest_pending").status == "warn"
    assert report.exit_code == 1


def test_an_unmigrated_database_fails_the_schema_check(tmp_path: Path) -> None:
    db = create_engine(f"sqlite:///{tmp_path}/empty.db")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/empty.db")
    report = diagnose(build_store(db, settings), settings)
    db.dispose()
    schema = report.checks[1]
    assert (schema.name, schema.status) == ("schema", "fail")
    assert "ledgerflow db upgrade" in schema.message
    assert report.exit_code == 2


def test_an_unreachable_store_fails_every_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/no/such/dir/x.db"
    db = create_engine(url)
    settings = Settings(database_url=url)
    report = diagnose(build_store(db, settings), settings)
    db.dispose()
    assert [c.status for c in report.checks] == ["fail"] * len(NAMES)
    assert "LEDGERFLOW_DATABASE_URL" in report.checks[0].message


def test_health_details_serves_the_report(lf: Ledgerflow, clock: FakeClock) -> None:
    with TestClient(create_app(lf)) as client:
        in_step_with_the_database(clock)
        ok = client.get("/api/health/details")
        assert ok.status_code == 200
        assert ok.json()["status"] == "ok", [c for c in ok.json()["checks"] if c["status"] != "ok"]
        assert [c["name"] for c in ok.json()["checks"]] == list(NAMES)
        lf.engine.trigger("greet", "ada")
        clock.advance(timedelta(seconds=700))
        failing = client.get("/api/health/details")
    assert failing.status_code == 503
    body = failing.json()
    assert body["status"] == "fail"
    assert {c["name"]: c["status"] for c in body["checks"]}["runs_overdue"] == "fail"


def test_report_status_is_the_worst_check() -> None:
    report = Report([Check("a", "ok", 0, ""), Check("b", "warn", 1, "x")])
    assert (report.status, report.exit_code) == ("warn", 1)
