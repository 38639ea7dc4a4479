"""The `ledgerflow` command line, as a user runs it (subprocess), on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from ledgerflow._app import Ledgerflow
from tests.cli.conftest import Cli


def test_db_upgrade_is_idempotent(cli: Cli) -> None:
    assert "schema is up to date" in cli("db", "upgrade").stdout


def test_trigger_list_show_history(cli: Cli, lf: Ledgerflow) -> None:
    out = cli("trigger", "greet", "--input", '"ada"', "--tag", "vip", "--tenant", "acme").stdout
    assert out.startswith("triggered run ")
    run_id = out.split()[2]
    lf.engine.run_due()
    listed = cli.json("runs", "list", "--tag", "vip")
    assert [(r["id"], r["status"], r["tenantMeta"]) for r in listed["data"]] == [
        (run_id, "completed", {"tenantId": "acme"})]
    assert cli.json("runs", "list", "--status", "failed")["data"] == []
    table = cli("runs", "list").stdout
    assert run_id in table and "greet@1" in table and "completed" in table
    shown = cli.json("runs", "show", run_id)
    assert shown["result"] == "hello ada" and shown["journal"][0]["stepId"] == "greet"
    assert "hello ada" in cli("runs", "show", run_id).stdout
    timeline = cli("runs", "history", run_id).stdout
    for event_type in ("RunCreated", "RunStarted", "StepCompleted", "RunCompleted"):
        assert event_type in timeline
    history = cli.json("runs", "history", run_id)["data"]
    assert [e["version"] for e in history] == [1, 2, 3, 4]


def test_signal_event_token_cancel(cli: Cli, lf: Ledgerflow) -> None:
    run_id = cli("trigger", "waiter").stdout.split()[2]
    lf.engine.run_due()
    cli("signal", run_id, "go", "--payload", "1")
    lf.engine.run_due()
    cli("event", run_id, "payment.settled", "--payload", '{"ok": true}')
    lf.engine.run_due()
    token_id = cli.json("runs", "show", run_id)["waitpoint"]["tokenId"]
    cli("token", run_id, token_id, "--payload", '"checked"')
    lf.engine.run_due()
    assert cli.json("runs", "show", run_id)["result"] == {"go": 1, "paid": {"ok": True},
                                                          "note": "checked"}
    other = cli("trigger", "waiter").stdout.split()[2]
    assert "canceled" in cli("cancel", other, "--reason", "test").stdout
    again = cli("cancel", other, ok=False)
    assert again.returncode == 1
    assert again.stderr.startswith("error:") and "Traceback" not in again.stderr
    assert "'canceled'" in again.stderr


def test_rerun_and_resume(cli: Cli, lf: Ledgerflow) -> None:
    failed = cli("trigger", "fragile", "--input", '{"ok": false}').stdout.split()[2]
    lf.engine.run_due()
    assert cli.json("runs", "show", failed)["status"] == "failed"
    rerun = cli.json("rerun", failed)
    assert rerun["input"] == {"ok": False} and rerun["id"] != failed
    resumed = cli.json("resume", failed, "--from-step", "second", "--input", '{"ok": true}')
    lf.engine.run_due()
    done = cli.json("runs", "show", resumed["id"])
    assert done["status"] == "completed" and done["result"]["second"] == "paid"


def test_show_prints_the_traceback_and_cancel_can_compensate(cli: Cli, lf: Ledgerflow) -> None:
    failed = cli("trigger", "fragile", "--input", '{"ok": false}').stdout.split()[2]
    lf.engine.run_due()
    shown = cli("runs", "show", failed).stdout
    assert "traceback (run)" in shown and 'raise Declined("card declined")' in shown
    assert "Declined: card declined" in shown
    booking = cli("trigger", "booking").stdout.split()[2]
    lf.engine.run_due()
    asked = cli("cancel", booking, "--reason", "trip called off", "--compensate").stdout
    assert "compensating" in asked
    lf.engine.run_due()
    done = cli.json("runs", "show", booking)
    assert done["status"] == "canceled"
    assert [j["stepId"] for j in done["journal"]] == ["hold", "hold:compensate"]


def test_user_mistakes_print_one_line_and_exit_non_zero(cli: Cli) -> None:
    for args in (("runs", "show", "no-such-run"), ("runs", "history", "no-such-run"),
                 ("signal", "no-such-run", "go"), ("trigger", "no-such-workflow"),
                 ("--workflows", "no.such.module", "runs", "list")):
        done = cli(*args, ok=False)
        assert done.returncode == 1, args
        assert "Traceback" not in done.stderr, args
        assert len(done.stderr.strip().splitlines()) == 1 and "error:" in done.stderr, args
    bad_json = cli("trigger", "greet", "--input", "{nope", ok=False)
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr
    assert "Traceback" not in bad_json.stderr


def test_demo_runs_end_to_end_and_leaves_its_files(cli: Cli, tmp_path: Path) -> None:
    where = tmp_path / "demo"
    out = cli("demo", "--dir", str(where)).stdout
    sink = where / "events.jsonl"
    lines = sink.read_text().splitlines()
    assert f"{len(lines)} events published to {sink} ({len(lines)} lines)" in out
    assert len(lines) > 30
    assert "compensated: charge, confirm" in out
    assert "demo.checkout-failing" in out and "failed" in out
    for event_type in ("TimerFired", "SignalReceived", "ChildStarted", "ChildFinished",
                       "RunCompleted"):
        assert event_type in out
