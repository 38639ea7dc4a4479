"""`ledgerflow --server URL ...` works against the real `serve` (its own database is
not even there) and refuses, in one line, the commands that need the database."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests._broker import free_port
from tests.cli.conftest import Cli, cli_env, one_error_line


@pytest.fixture
def remote(url: str, tmp_path: Path) -> Cli:
    """The CLI with a database URL that does not exist: only the server can answer."""
    env = cli_env(f"sqlite:///{tmp_path}/absent/none.db", tmp_path)
    env.update(LEDGERFLOW_SERVER=url, LEDGERFLOW_API_TOKEN="root-token")
    return Cli(env)


def test_run_commands_go_through_the_server(remote: Cli, url: str) -> None:
    key = f"cli-{uuid.uuid4().hex[:8]}"
    done = remote("trigger", "greet", "--input", '"cli"', "--idempotency-key", key,
                  "--wait", "--timeout", "60")
    lines = done.stdout.splitlines()
    assert lines[0].startswith("triggered run ") and lines[0].endswith("(completed)")
    assert lines[1] == '"hello cli"'
    run_id = lines[0].split()[2]
    again = remote("trigger", "greet", "--input", '"cli"', "--idempotency-key", key)
    assert again.stdout.startswith(f"existing run {run_id}")
    shown = remote.json("runs", "show", run_id[:10])
    assert shown["id"] == run_id and shown["journal"][0]["stepId"] == "greet"
    assert [e["type"] for e in remote.json("runs", "history", run_id)["data"]][-1] == \
        "RunCompleted"
    assert run_id in [r["id"] for r in remote.json("runs", "list", "--workflow", "greet",
                                                  "--limit", "500")["data"]]
    waiting = remote.json("trigger", "waiter")["id"]
    sent = remote("signal", waiting, "nope", "--payload", "1")
    assert sent.stdout.startswith(f"signal 'nope' sent to run {waiting}")
    assert "buffered: run waits for" in sent.stdout
    assert remote("cancel", waiting, "--reason", "test").stdout.startswith(
        f"canceled run {waiting}")
    line = one_error_line(remote("cancel", waiting, ok=False))
    assert "'canceled'" in line and "'cancel'" in line


def test_rerun_needs_yes_for_an_unsafe_workflow_and_resume_works_remotely(
        remote: Cli) -> None:
    charged = remote.json("trigger", "charge", "--input", "5", "--wait")["id"]
    line = one_error_line(remote("rerun", charged, ok=False))
    assert "rerun_safety='unsafe'" in line and "--yes" in line
    rerun = remote("rerun", charged, "--yes").stdout
    assert rerun.startswith(f"rerun of {charged}: run ")
    elsewhere = f"staging-{uuid.uuid4().hex[:8]}"
    resumed = remote("resume", elsewhere, "--workflow", "fragile", "--from-step", "second",
                     "--seed", '{"first": {"n": 2}}', "--input", '{"ok": true}', "--json")
    assert json.loads(resumed.stdout)["resumedFrom"] == elsewhere
    assert "no dead letters" in remote("outbox", "dlq", "list").stdout or \
        remote.json("outbox", "dlq", "list")["data"] is not None


@pytest.mark.parametrize("command", [["worker"], ["outbox", "status"]])
def test_commands_that_need_the_database_refuse_a_server(remote: Cli,
                                                         command: list[str]) -> None:
    line = one_error_line(remote(*command, ok=False))
    assert "works on the database, not through a server" in line
    assert "LEDGERFLOW_SERVER" in line


def test_an_unreachable_or_refusing_server_is_one_clear_line(remote: Cli, url: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    line = one_error_line(remote("--server", nowhere, "runs", "list", ok=False))
    assert f"cannot reach the server {nowhere}" in line
    line = one_error_line(remote("--token", "wrong", "runs", "list", ok=False))
    assert "missing or invalid bearer token" in line


def test_queue_and_schedule_commands_go_through_the_server(remote: Cli) -> None:
    queue = f"q-{uuid.uuid4().hex[:8]}"
    made = remote.json("queues", "set", queue, "--concurrency", "2", "--rate-limit", "5",
                       "--json")
    assert (made["name"], made["concurrency"], made["rateLimit"]) == (
        queue, 2, {"limit": 5, "periodSeconds": 1.0})
    cleared = remote.json("queues", "set", queue, "--clear", "concurrency", "--json")
    assert (cleared["concurrency"], cleared["rateLimit"]["limit"]) == (None, 5)
    assert remote.json("queues", "pause", queue, "--json")["paused"] is True
    assert queue in remote("queues", "list").stdout
    line = one_error_line(remote("queues", "pause", f"{queue}-absent", ok=False))
    assert "no queue" in line and "default" in line
    triggered = remote.json("trigger", "greet", "--input", '"q"', "--queue", queue)
    assert triggered["status"] != "completed"  # held: the queue is paused
    remote("queues", "resume", queue)
    done = remote("trigger", "greet", "--input", '"q"', "--run-id", triggered["id"],
                  "--wait", "--timeout", "60")
    assert done.stdout.splitlines()[0].endswith("(completed)")

    schedule = f"s-{uuid.uuid4().hex[:8]}"
    shown = remote("schedules", "create", schedule, "--workflow", "greet", "--every", "3600",
                   "--input", '"cron"', "--paused").stdout
    assert shown.startswith(f"schedule {schedule}: greet, every 3600s, paused")
    assert schedule in remote("schedules", "list").stdout
    assert ", active," in remote("schedules", "resume", schedule).stdout
    run_id = remote("schedules", "trigger", schedule).stdout.strip()
    assert run_id.startswith(f"{schedule}@")
    assert remote("schedules", "delete", schedule).stdout.startswith("deleted schedule")
    line = one_error_line(remote("schedules", "show", schedule, ok=False))
    assert f"no schedule with id {schedule!r}" in line


def test_debounced_triggers_from_the_command_line_are_one_run(remote: Cli) -> None:
    key = f"d-{uuid.uuid4().hex[:8]}"  # a window longer than two CLI starts on a busy box
    ids = {remote.json("trigger", "greet", "--input", f'"{name}"', "--debounce", key,
                       "--debounce-seconds", "60")["id"] for name in ("a", "b")}
    assert len(ids) == 1
    line = one_error_line(remote("trigger", "greet", "--debounce", key,
                                 "--debounce-seconds", "0", ok=False))
    assert "debounce.seconds: Input should be greater than 0" in line
