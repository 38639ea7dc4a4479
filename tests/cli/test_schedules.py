"""`ledgerflow schedules ...`: create, list with next fire times, pause, resume, trigger,
delete, and bad input as one error line."""

from __future__ import annotations

import json
from typing import Any

from ledgerflow._app import Ledgerflow
from ledgerflow.domain import schedules as sch


def test_create_list_pause_resume_trigger_delete(run: Any, lf: Ledgerflow) -> None:
    made = run("schedules", "create", "nightly", "--workflow", "greet", "--cron", "30 2 * * *",
               "--timezone", "Europe/Paris", "--input", '"Ada"')
    assert made.exit_code == 0, made.output
    assert "schedule nightly: greet, 30 2 * * * Europe/Paris, active, next" in \
        made.output.replace("\n", " ")
    listed = run("schedules", "list")
    assert listed.exit_code == 0 and "nightly" in listed.output
    data = json.loads(run("schedules", "list", "--json").output)["data"]
    assert data[0]["timezone"] == "Europe/Paris" and len(data[0]["nextFireTimes"]) == 5
    assert "paused" in run("schedules", "pause", "nightly").output
    triggered = run("schedules", "trigger", "nightly")
    assert triggered.exit_code == 0, triggered.output
    run_id = triggered.output.strip()
    assert run_id.startswith("nightly@")
    assert lf.engine.history(run_id)[0].event.input == "Ada"  # type: ignore[attr-defined]
    assert "active" in run("schedules", "resume", "nightly").output
    shown = json.loads(run("schedules", "show", "nightly", "--json").output)
    assert [h["type"] for h in shown["history"]] == [
        "ScheduleCreated", "SchedulePaused", "ScheduleFired", "ScheduleResumed"]
    assert run("schedules", "delete", "nightly").exit_code == 0
    assert "no schedules" in run("schedules", "list").output
    assert lf.store.stream_version(sch.stream_id("nightly")) == 5


def test_update_gives_a_schedule_a_new_spec(run: Any, lf: Ledgerflow) -> None:
    run("schedules", "create", "tick", "--workflow", "greet", "--every", "60", "--paused")
    changed = run("schedules", "update", "tick", "--workflow", "greet", "--cron", "0 9 * * 1",
                  "--timezone", "Europe/Paris", "--input", '"Grace"', "--json")
    assert changed.exit_code == 0, changed.output
    record = json.loads(changed.output)
    assert (record["cron"], record["everySeconds"], record["input"], record["paused"]) == (
        "0 9 * * 1", None, "Grace", True)
    bad = run("schedules", "update", "tick", "--workflow", "greet")
    assert bad.exit_code != 0 and "exactly one of cron and everySeconds" in bad.output
    missing = run("schedules", "update", "missing", "--workflow", "greet", "--every", "5")
    assert missing.exit_code != 0 and "no schedule with id 'missing'" in missing.output
    kinds = [r.type for r in lf.store.read_stream(sch.stream_id("tick"))]
    assert kinds == ["ScheduleCreated", "ScheduleUpdated"]


def test_bad_input_is_one_clear_error(run: Any, lf: Ledgerflow) -> None:
    both = run("schedules", "create", "x", "--workflow", "greet", "--cron", "* * * * *",
               "--every", "5")
    assert both.exit_code != 0 and "exactly one of cron and everySeconds" in both.output
    zone = run("schedules", "create", "x", "--workflow", "greet", "--cron", "0 * * * *",
               "--timezone", "Moon/Base")
    assert zone.exit_code != 0 and "unknown time zone 'Moon/Base'" in zone.output
    nope = run("schedules", "create", "x", "--workflow", "nope", "--every", "5")
    assert nope.exit_code != 0 and "no workflow 'nope'" in nope.output
    missing = run("schedules", "pause", "missing")
    assert missing.exit_code != 0 and "no schedule with id 'missing'" in missing.output
    assert lf.store.stream_version(sch.stream_id("x")) == 0
