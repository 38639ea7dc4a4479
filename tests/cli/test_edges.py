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
