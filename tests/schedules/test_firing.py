"""The scheduler on a fake clock, both backends: one run per fire time, catch-up within
the window and skips beyond it, overlap policies, pause / resume / trigger / delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledgerflow.domain import schedules as sch
from ledgerflow.domain.errors import InvalidRequest, UnknownSchedule, UnknownWorkflow
from ledgerflow.domain.events import RunCreated
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.runtime.schedules import ScheduleExists
from tests.schedules.conftest import START, Rig


def at(seconds: int) -> datetime:
    return START + timedelta(seconds=seconds)


def run_ids(schedule_id: str, *seconds: int) -> list[str]:
    return [sch.run_id(schedule_id, at(s)) for s in seconds]


def test_each_fire_time_starts_one_run_with_its_id_and_tag(rig: Rig) -> None:
    rig.schedules.create("every10", rig.spec(every_seconds=10, input={"n": 1}, overlap="allow"))
    assert rig.scheduler.fire_due() == 0  # created at :00, first fire at :10
    for _ in range(35):
        rig.clock.advance(timedelta(seconds=1))
        rig.scheduler.fire_due()
        rig.scheduler.fire_due()  # a second pass at the same moment starts nothing
    assert [f.run_id for f in rig.fired("every10")] == run_ids("every10", 10, 20, 30)
    assert run_ids("every10", 10)[0] == "every10@2026-01-05T12:00:10Z"
    state = rig.engine.state("every10@2026-01-05T12:00:30Z")
    assert state.status is RunStatus.PENDING
    created = rig.engine.history("every10@2026-01-05T12:00:30Z")[0].event
    assert isinstance(created, RunCreated)
    assert created.tags == ["schedule:every10"] and created.input == {"n": 1}


def test_runs_it_starts_are_executed_by_the_engine(rig: Rig) -> None:
    rig.schedules.create("s", rig.spec(every_seconds=5, input="hi"))
    rig.clock.advance(timedelta(seconds=5))
    assert rig.scheduler.fire_due() == 1
    rig.engine.run_due()
    run = sch.run_id("s", at(5))
    assert rig.engine.state(run).status is RunStatus.COMPLETED
    assert rig.engine.state(run).result == "hi"


def test_after_downtime_fires_within_the_window_start_and_older_are_skipped(rig: Rig) -> None:
    rig.schedules.create("s", rig.spec(every_seconds=10, catchup_window_seconds=30,
                                       overlap="allow"))
    rig.clock.set(at(125))  # down for two minutes: fires :10 ... :120
    assert rig.scheduler.fire_due() == 3
    assert [f.run_id for f in rig.fired("s")] == run_ids("s", 100, 110, 120)
    skipped = [e for e in rig.events("s") if isinstance(e, sch.ScheduleSkipped)]
    assert len(skipped) == 1
    assert (skipped[0].reason, skipped[0].count) == ("missed", 9)
    assert (skipped[0].first, skipped[0].last) == (at(10), at(90))
    record = rig.schedules.get("s")
    assert (record.fired, record.skipped) == (3, 9)
    assert record.next_fire_times[0] == at(130)


def test_catch_up_honours_the_overlap_policy(rig: Rig) -> None:
    rig.schedules.create("s", rig.spec(every_seconds=10, catchup_window_seconds=60))
    rig.clock.set(at(45))
    assert rig.scheduler.fire_due() == 1  # :10 starts; :20, :30, :40 find it running
    assert [f.run_id for f in rig.fired("s")] == run_ids("s", 10)
    skipped = [e for e in rig.events("s") if isinstance(e, sch.ScheduleSkipped)]
    assert [(e.reason, e.count, e.first, e.last) for e in skipped] == [
        ("overlap", 3, at(20), at(40))]


def test_overlap_skip_starts_nothing_while_the_previous_run_goes(rig: Rig) -> None:
    rig.schedules.create("s", rig.spec(workflow_id="waiting", every_seconds=10))
    rig.clock.set(at(10))
    rig.scheduler.fire_due()
    rig.engine.run_due()  # the run waits for its signal
    rig.clock.set(at(20))
    assert rig.scheduler.fire_due() == 0
    rig.engine.signal(sch.run_id("s", at(10)), "go", 1)
    rig.engine.run_due()
    rig.clock.set(at(30))
    assert rig.scheduler.fire_due() == 1
    assert [f.run_id for f in rig.fired("s")] == run_ids("s", 10, 30)


def test_overlap_buffer_one_starts_one_kept_fire_when_the_run_ends(rig: Rig) -> None:
    rig.schedules.create("s", rig.spec(workflow_id="waiting", every_seconds=10,
                                       overlap="buffer_one"))
    rig.clock.set(at(10))
    rig.scheduler.fire_due()
    rig.engine.run_due()
    for second in (20, 30, 40):
        rig.clock.set(at(second))
        assert rig.scheduler.fire_due() == 0
    assert rig.schedules.get("s").buffered_fire_time == at(20)
    rig.engine.signal(sch.run_id("s", at(10)), "go", 1)
    rig.engine.run_due()
    rig.clock.set(at(41))
    assert rig.scheduler.fire_due() == 1  # the buffered :20, as soon as the run ended
    assert [f.run_id for f in rig.fired("s")] == run_ids("s", 10, 20)
    skipped = [e for e in rig.events("s") if isinstance(e, sch.ScheduleSkipped)]
    assert sum(e.count for e in skipped) == 2  # :30 and :40
    assert rig.schedules.get("s").buffered_fire_time is None


def test_overlap_allow_starts_every_fire(rig: Rig) -> None:
    rig.schedules.create("s", rig.spec(workflow_id="waiting", every_seconds=10,
                                       overlap="allow"))
    for second in (10, 20, 30):
        rig.clock.set(at(second))
        rig.scheduler.fire_due()
        rig.engine.run_due()
    assert [f.run_id for f in rig.fired("s")] == run_ids("s", 10, 20, 30)
    assert all(rig.engine.state(r).status is RunStatus.SUSPENDED
               for r in run_ids("s", 10, 20, 30))


def test_pause_resume_trigger_delete(rig: Rig) -> None:
    rig.schedules.create("s", rig.spec(every_seconds=10))
    paused = rig.schedules.pause("s")
    assert paused.paused and paused.next_fire_times == []
    rig.clock.set(at(35))
    assert rig.scheduler.fire_due() == 0
    run = rig.schedules.trigger("s")  # paused or not
    assert run == "s@2026-01-05T12:00:35Z"
    assert rig.engine.state(run).status is RunStatus.PENDING
    resumed = rig.schedules.resume("s")
    assert not resumed.paused and resumed.next_fire_times[0] == at(40)
    rig.clock.set(at(40))
    rig.engine.run_due()
    assert rig.scheduler.fire_due() == 1  # the fires while paused are not caught up
    rig.schedules.delete("s")
    with pytest.raises(UnknownSchedule):
        rig.schedules.get("s")
    rig.clock.set(at(60))
    assert rig.scheduler.fire_due() == 0
    kinds = [type(e).__name__ for e in rig.events("s")]
    assert kinds == ["ScheduleCreated", "SchedulePaused", "ScheduleFired", "ScheduleResumed",
                     "ScheduleFired", "ScheduleDeleted"]
    assert rig.schedules.list_schedules() == []


def test_create_is_idempotent_and_refuses_another_spec(rig: Rig) -> None:
    spec = rig.spec(every_seconds=10)
    assert rig.schedules.create("s", spec)[1] is True
    assert rig.schedules.create("s", spec)[1] is False
    with pytest.raises(ScheduleExists):
        rig.schedules.create("s", rig.spec(every_seconds=20))
    assert rig.store.stream_version(sch.stream_id("s")) == 1


@pytest.mark.parametrize(("fields", "says"), [
    ({"cron": "61 * * * *"}, "minute field: 61 is out of range"),
    ({"cron": "* * * *"}, "not five"),
    ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"cron": "0 * * * *", "every_seconds": 5}, "exactly one of cron and everySeconds"),
    ({}, "exactly one of cron and everySeconds, got neither"),
    ({"every_seconds": 0}, "everySeconds must be at least 1"),
])
def test_bad_specs_are_refused_and_nothing_is_appended(rig: Rig, fields: dict[str, object],
                                                        says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        rig.schedules.create("bad", rig.spec(**fields))
    assert rig.store.stream_version(sch.stream_id("bad")) == 0


def test_unknown_workflow_and_schedule(rig: Rig) -> None:
    with pytest.raises(UnknownWorkflow):
        rig.schedules.create("s", rig.spec(workflow_id="nope", every_seconds=5))
    for command in (rig.schedules.pause, rig.schedules.resume, rig.schedules.trigger,
                    rig.schedules.delete, rig.schedules.get):
        with pytest.raises(UnknownSchedule):
            command("missing")
    assert rig.store.stream_version(sch.stream_id("missing")) == 0


def test_cron_across_fall_back_fires_each_utc_hour_once(rig: Rig) -> None:
    start = datetime(2026, 10, 24, 21, 30, tzinfo=UTC)
    rig.clock.set(start)
    rig.schedules.create("hourly", rig.spec(cron="0 * * * *", timezone="Europe/Paris",
                                            overlap="allow", catchup_window_seconds=600))
    while rig.clock() < datetime(2026, 10, 25, 4, 30, tzinfo=UTC):
        rig.clock.advance(timedelta(minutes=7))
        rig.scheduler.fire_due()
    times = [f.fire_time for f in rig.fired("hourly")]
    assert times == [datetime(2026, 10, 24, 22, tzinfo=UTC) + timedelta(hours=h)
                     for h in range(7)]  # 00:00 CEST ... 02:00 CEST, 02:00 CET ... 05:00 CET


def test_a_declared_schedule_is_upserted(rig: Rig) -> None:
    from ledgerflow import Cron

    rig.schedules.registry.register("nightly", lambda ctx, data: None,
                                    schedule=Cron("30 2 * * *", timezone="Europe/Paris"))
    assert rig.scheduler.declare() == 1
    assert rig.scheduler.declare() == 0  # the same declaration: nothing appended
    rig.schedules.registry.register("nightly", lambda ctx, data: None,
                                    schedule=Cron("45 2 * * *", timezone="Europe/Paris"))
    assert rig.scheduler.declare() == 1
    record = rig.schedules.get("nightly", history=10)
    assert record.cron == "45 2 * * *"
    assert [h.type for h in record.history or []] == ["ScheduleCreated", "ScheduleUpdated"]
    assert record.next_fire_times[0] == datetime(2026, 1, 6, 1, 45, tzinfo=UTC)


def test_the_workflow_list_shows_a_declared_schedule(rig: Rig) -> None:
    from ledgerflow import Every

    rig.schedules.registry.register("beat", lambda ctx, data: None,
                                    schedule=Every(timedelta(minutes=5), overlap="allow"))
    described = {w.name: w.to_wire()["schedule"] for w in rig.schedules.registry.describe()}
    assert described["quick"] is None
    assert described["beat"] == {"input": None, "cron": None, "everySeconds": 300,
                                 "timezone": "UTC", "overlap": "allow",
                                 "catchupWindowSeconds": 60}


def test_a_bad_declaration_fails_where_it_is_written() -> None:
    from ledgerflow import Cron, Every

    with pytest.raises(InvalidRequest, match="unknown time zone 'Paris'"):
        Cron("0 * * * *", timezone="Paris")
    with pytest.raises(ValueError, match="whole seconds"):
        Every(timedelta(milliseconds=1500))


def test_a_row_behind_its_stream_conflicts_then_is_refolded(rig: Rig) -> None:
    from ledgerflow.eventstore.records import NewEvent, StreamAppend

    rig.schedules.create("s", rig.spec(every_seconds=10, overlap="allow"))
    rig.store.append(StreamAppend(sch.stream_id("s"), [NewEvent(sch.ScheduleSkipped(
        reason="missed", first=at(10), last=at(20), count=2))], 1))  # by hand: row not told
    rig.clock.set(at(35))
    assert rig.scheduler.fire_due() == 0  # the conflict: nothing written, the row refolded
    assert rig.schedules.get("s").version == 2
    assert rig.scheduler.fire_due() == 1
    assert [f.run_id for f in rig.fired("s")] == run_ids("s", 30)
