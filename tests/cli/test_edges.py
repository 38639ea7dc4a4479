"""The command line keeps the promises at the edges: a conflicting reuse exits non-zero
with one clear line, priority and the lineage filters reach the engine, typed input is
checked before anything is appended, and the registered workflows are listed."""

from __future__ import annotations

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
