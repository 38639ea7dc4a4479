"""`ledgerflow queues list|set|pause|resume` and `trigger --queue --concurrency-key
--start-at`, in a subprocess against PostgreSQL; bad input exits 1 saying what is
wrong, and changes nothing."""

from __future__ import annotations

from ledgerflow._app import Ledgerflow
from tests.cli.conftest import Cli


def test_set_pause_resume_and_list(cli: Cli, lf: Ledgerflow) -> None:
    shown = cli.json("queues", "set", "mail", "--concurrency", "3", "--rate-limit", "20",
                     "--rate-period", "60")
    assert (shown["concurrency"], shown["rateLimit"]) == (3, {"limit": 20, "periodSeconds": 60.0})
    assert cli.json("queues", "pause", "mail")["paused"] is True
    out = cli("trigger", "greet", "--input", '"ada"', "--queue", "mail",
              "--concurrency-key", "ada").stdout
    run_id = out.split()[2]
    listed = {q["name"]: q for q in cli.json("queues", "list")["data"]}
    assert (listed["mail"]["paused"], listed["mail"]["depth"]) == (True, 1)
    assert lf.engine.run_due(10).claimed == 0
    assert cli.json("queues", "resume", "mail")["paused"] is False
    assert lf.engine.run_due(10).completed == 1
    assert cli.json("runs", "show", run_id)["queue"] == "mail"
    cleared = cli.json("queues", "set", "mail", "--clear", "concurrency")
    assert cleared["concurrency"] is None and cleared["rateLimit"] is not None
    table = cli("queues", "list").stdout
    assert "mail" in table and "default" in table
    actors = [r.metadata.get("actor") for r in lf.store.read_stream("queue:mail")]
    assert actors == ["cli"] * 4


def test_a_start_time_holds_the_run(cli: Cli, lf: Ledgerflow) -> None:
    out = cli("trigger", "greet", "--start-at", "2999-01-01T00:00:00+00:00").stdout
    run_id = out.split()[2]
    assert lf.engine.run_due(10).claimed == 0
    assert cli.json("runs", "show", run_id)["status"] == "pending"


def test_debounced_triggers_are_one_run_with_the_last_input(cli: Cli, lf: Ledgerflow) -> None:
    ids = {cli.json("trigger", "greet", "--input", f'"{name}"', "--debounce", "inbox",
                    "--debounce-seconds", "600")["id"] for name in ("ada", "grace")}
    assert len(ids) == 1
    assert lf.engine.run_due(10).claimed == 0  # the window is still open
    assert lf.engine.state(ids.pop()).input == "grace"
    bad = cli("trigger", "greet", "--debounce", "inbox", "--run-id", "x-1", ok=False)
    assert "a debounced trigger takes neither a run id nor an idempotency key" in bad.stderr


def test_bad_queue_input_exits_1_saying_what_is_wrong(cli: Cli) -> None:
    unknown = cli("trigger", "greet", "--queue", "nope", ok=False)
    assert unknown.returncode == 1 and "no queue 'nope'" in unknown.stderr
    assert "default" in unknown.stderr
    paused = cli("queues", "pause", "nope", ok=False)
    assert paused.returncode == 1 and "no queue 'nope'" in paused.stderr
    zero = cli("queues", "set", "q", "--concurrency", "0", ok=False)
    assert zero.returncode == 1 and "concurrency must be a positive" in zero.stderr
    assert [q["name"] for q in cli.json("queues", "list")["data"]] == ["default"]
    assert cli.json("runs", "list")["data"] == []
