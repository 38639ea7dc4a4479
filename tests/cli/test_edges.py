"""The command line keeps the promises at the edges: a conflicting reuse exits non-zero
with one clear line, priority and the lineage filters reach the engine, typed input is
checked before anything is appended, and the registered workflows are listed."""

from __future__ import annotations

from ledgerflow._app import Ledgerflow
from tests.cli.conftest import Cli


def test_a_run_id_reused_with_other_input_exits_non_zero_with_one_line(cli: Cli) -> None:
    assert cli("trigger", "greet", "--run-id", "r-1", "--input", '"ada"').stdout.startswith(
        "triggered run r-1")
    assert cli("trigger", "greet", "--run-id", "r-1", "--input", '"ada"').stdout.startswith(
        "existing run r-1")
    other = cli("trigger", "greet", "--run-id", "r-1", "--input", '"bob"', ok=False)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    [line] = other.stderr.strip().splitlines()
    assert line.startswith("error: run 'r-1' exists already, triggered with another input")
    assert cli.json("runs", "show", "r-1")["input"] == "ada"


def test_priority_and_the_lineage_filters(cli: Cli, lf: Ledgerflow) -> None:
    urgent = cli.json("trigger", "greet", "--priority", "5")
    assert urgent["priority"] == 5
    failed = cli("trigger", "fragile").stdout.split()[2]
    lf.engine.run_due()
    rerun = cli.json("rerun", failed)
    resumed = cli.json("resume", failed, "--from-step", "second", "--input", '{"ok": true}')
    assert [r["id"] for r in cli.json("runs", "list", "--rerun-of", failed)["data"]] == [
        rerun["id"]]
    assert [r["id"] for r in cli.json("runs", "list", "--resumed-from", failed)["data"]] == [
        resumed["id"]]
    assert cli.json("runs", "list", "--compensation", "compensated")["data"] == []
    assert cli("runs", "list", "--compensation", "partial", ok=False).returncode == 2
    shown = cli("runs", "show", resumed["id"]).stdout
    assert "resumedFrom" in shown and failed in shown


def test_typed_input_errors_one_line_each_and_workflows_are_listed(cli: Cli) -> None:
    typed = ("--workflows", "tests.cli._typed")
    bad = cli(*typed, "trigger", "pay", "--input", '{"cents": "ten"}', ok=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "error: the input of workflow 'pay@1' does not validate; nothing was appended",
        "input.account: Field required",
        "input.cents: Input should be a valid integer, unable to parse string as an integer"]
    assert cli.json("runs", "list")["data"] == []
    listed = {w["name"]: w for w in cli.json(*typed, "workflows")["data"]}
    assert listed["pay"]["inputSchema"]["title"] == "Payment"
    assert listed["pay"]["description"] == "Charge an account."
    assert {"greet", "waiter", "fragile", "parent"} <= set(listed)
    assert listed["pay"]["kind"] == "code"
    assert cli.json(*typed, "workflows", "list") == cli.json(*typed, "workflows")
    table = cli(*typed, "workflows").stdout
    assert "pay" in table and "Payment" in table and "Charge an account." in table
