"""`Client` / `AsyncClient` on the routes beyond runs, against the real `serve` of
the client tests: queues and their limits, schedules, a run's audit, and the trigger
options of flow control (queue, debounce, start_at)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ledgerflow.client import AsyncClient, Client
from ledgerflow.domain.errors import InvalidRequest, UnknownQueue, UnknownSchedule
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.runtime.queues import QueueInfo
from ledgerflow.runtime.schedules import ScheduleRecord
from tests.client.conftest import unique


def test_queue_limits_are_set_paused_and_resumed_through_the_client(client: Client) -> None:
    name = unique("q")
    made = client.set_queue(name, concurrency=2, rate_limit=(10, 1.0))
    assert isinstance(made, QueueInfo)
    assert (made.name, made.concurrency, made.per_key_concurrency) == (name, 2, None)
    assert made.rate_limit == {"limit": 10, "periodSeconds": 1.0}
    changed = client.set_queue(name, per_key_concurrency=1)  # the others stay as they are
    assert (changed.concurrency, changed.per_key_concurrency) == (2, 1)
    removed = client.set_queue(name, concurrency=None)
    assert (removed.concurrency, removed.per_key_concurrency) == (None, 1)
    assert client.pause_queue(name).paused
    assert [q.paused for q in client.queues() if q.name == name] == [True]
    assert not client.resume_queue(name).paused


def test_bad_queue_input_is_the_engines_error(client: Client) -> None:
    name = unique("q")
    with pytest.raises(InvalidRequest):
        client.set_queue(name, concurrency=0)
    assert name not in {q.name for q in client.queues()}  # nothing was created
    with pytest.raises(UnknownQueue) as unknown:
        client.pause_queue(name)
    assert unknown.value.queue == name and "default" in unknown.value.known
    with pytest.raises(UnknownQueue):
        client.trigger("greet", "ada", queue=name)


def test_trigger_options_debounce_and_start_at(client: Client) -> None:
    key = unique("debounce")
    ids = {client.trigger("greet", name, debounce=(key, 0.5)).run_id
           for name in ("ada", "grace", "edsger")}
    assert len(ids) == 1  # three triggers in the window: one run, with the last input
    done = client.wait(ids.pop(), timeout=60, poll=0.1)
    assert (done.status, done.result) == (RunStatus.COMPLETED, "hello edsger")

    start_at = datetime.now(UTC) + timedelta(seconds=1.5)
    later = client.trigger("greet", "barbara", start_at=start_at)
    finished = client.wait(later.run_id, timeout=60, poll=0.1)
    assert finished.status is RunStatus.COMPLETED
    started = [e for e in client.history(later.run_id) if e.type == "RunStarted"]
    assert started[0].recorded_at >= start_at  # not claimed before its time


def test_schedules_round_trip_through_the_client(client: Client) -> None:
    schedule_id = unique("nightly")
    made = client.create_schedule(schedule_id, "greet", "ada", cron="0 3 * * *",
                                  timezone="Europe/Paris")
    assert isinstance(made, ScheduleRecord)
    assert (made.schedule_id, made.cron, made.timezone, made.paused) == (
        schedule_id, "0 3 * * *", "Europe/Paris", False)
    assert made.next_fire_times and made.next_fire_times[0] > datetime.now(UTC)
    again = client.create_schedule(schedule_id, "greet", "ada", cron="0 3 * * *",
                                   timezone="Europe/Paris")
    assert again.version == made.version  # the same create again changes nothing
    assert schedule_id in {s.schedule_id for s in client.schedules("greet")}
    changed = client.update_schedule(schedule_id, "greet", "grace", every_seconds=7200)
    assert (changed.cron, changed.every_seconds, changed.input) == (None, 7200, "grace")
    assert client.pause_schedule(schedule_id).paused
    assert not client.resume_schedule(schedule_id).paused
    run_id = client.trigger_schedule(schedule_id)
    assert client.wait(run_id, timeout=60, poll=0.1).result == "hello grace"
    detail = client.schedule(schedule_id)
    assert detail.history is not None
    assert [e.type for e in detail.history][:4] == [
        "ScheduleCreated", "ScheduleUpdated", "SchedulePaused", "ScheduleResumed"]
    client.delete_schedule(schedule_id)
    with pytest.raises(UnknownSchedule) as gone:
        client.schedule(schedule_id)
    assert gone.value.schedule_id == schedule_id


def test_a_runs_audit_through_the_client(client: Client) -> None:
    run = client.trigger("greet", "ada")
    client.wait(run.run_id, timeout=60, poll=0.1)
    report = client.audit(run.run_id)
    assert report.verified and report.run_id == run.run_id
    assert report.events == len(client.history(run.run_id))
    assert report.head is not None and report.first_bad_version is None


def test_the_async_client_has_the_same_admin_calls(url: str) -> None:
    name, schedule_id = unique("q"), unique("every")

    async def go() -> tuple[QueueInfo, ScheduleRecord, bool]:
        async with AsyncClient(url, token="root-token") as lf:
            await lf.set_queue(name, concurrency=3)
            await lf.pause_queue(name)
            listed = [q for q in await lf.queues() if q.name == name]
            await lf.resume_queue(name)
            await lf.create_schedule(schedule_id, "greet", "ada", every_seconds=3600,
                                     paused=True)
            schedule = await lf.schedule(schedule_id)
            await lf.delete_schedule(schedule_id)
            run = await lf.trigger("greet", "ada", queue=name)
            await lf.wait(run.run_id, timeout=60, poll=0.1)
            audit = await lf.audit(run.run_id)
            return listed[0], schedule, audit.verified

    queue, schedule, verified = asyncio.run(go())
    assert (queue.concurrency, queue.paused) == (3, True)
    assert (schedule.every_seconds, schedule.paused) == (3600, True)
    assert verified
