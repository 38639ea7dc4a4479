"""Commands that tell the truth (in process, typer's runner, on PostgreSQL): run id
prefixes, a signal the run does not wait for, `trigger --wait`'s exit codes, options
that refuse what they cannot mean, and help texts a person can read."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from typer.main import get_command
from typer.testing import CliRunner, Result

from ledgerflow._app import Ledgerflow
from ledgerflow.cli import app
from ledgerflow.projections import queries


def _run_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout.split()[2]


def test_commands_take_a_unique_prefix_and_list_the_candidates_of_another(
        run: Any, lf: Ledgerflow) -> None:
    for run_id in ("abcdef01-one", "abcdef02-two"):
        assert run("trigger", "waiter", "--run-id", run_id).exit_code == 0
    lf.engine.run_due()
    shown = run("runs", "show", "abcdef01")
    assert shown.exit_code == 0 and "abcdef01-one" in shown.stdout
    assert run("signal", "abcdef02", "go").stdout.startswith(
        "signal 'go' sent to run abcdef02-two (")
    assert "RunCreated" in run("runs", "history", "abcdef02").stdout
    ambiguous = run("cancel", "abcdef0")
    assert ambiguous.exit_code == 1
    assert ambiguous.stderr.strip() == ("error: run id prefix 'abcdef0' is ambiguous: it "
                                        "starts abcdef01-one, abcdef02-two; give more characters")
    assert run("cancel", "abcdef01").stdout.startswith("canceled run abcdef01-one")
    listed = run("runs", "list", "--parent", "abcdef01", "--json")
    assert listed.exit_code == 0 and '"data": []' in listed.stdout


def test_a_signal_the_run_does_not_wait_for_is_buffered_and_says_so(
        run: Any, lf: Ledgerflow) -> None:
    run_id = _run_id(run("trigger", "waiter"))
    lf.engine.run_due()
    typo = run("signal", run_id[:8], "og", "--payload", "1")
    assert typo.exit_code == 0
    assert typo.stdout.splitlines()[-1] == "buffered: run waits for signal 'go'"
    woke = run("signal", run_id[:8], "go", "--payload", "2")
    assert woke.exit_code == 0 and "buffered" not in woke.output
    lf.engine.run_due()
    early = run("event", run_id, "later.event")
    assert early.stdout.splitlines()[-1] == "buffered: run waits for event 'payment.settled'"


def _worker(lf: Ledgerflow, stop: threading.Event, cancel: str | None = None) -> None:
    while not stop.is_set():
        if cancel is not None:
            with lf.db.connect() as conn:
                records, _ = queries.list_runs(conn, workflow_id=cancel)
            for r in records:
                if not r.status.is_terminal:
                    lf.engine.cancel(r.run_id, "changed my mind")
        else:
            lf.engine.run_due()
        time.sleep(0.05)


def _waited(run: Any, lf: Ledgerflow, *args: str, cancel: str | None = None) -> Result:
    stop = threading.Event()
    thread = threading.Thread(target=_worker, args=(lf, stop, cancel), daemon=True)
    thread.start()
    try:
        return run("trigger", *args, "--wait", "--timeout", "30")  # type: ignore[no-any-return]
    finally:
        stop.set()
        thread.join()


def test_trigger_wait_exits_0_when_completed_1_when_failed_or_canceled(
        run: Any, lf: Ledgerflow) -> None:
    done = _waited(run, lf, "greet", "--input", '"ada"')
    assert done.exit_code == 0, done.output
    assert "(completed)" in done.stdout and '"hello ada"' in done.stdout
    failed = _waited(run, lf, "fragile", "--input", '{"ok": false}')
    assert failed.exit_code == 1
    assert re.fullmatch(r"run \S+ failed: StepFailed: step 'second' failed after 1 "
                        r"attempt\(s\): Declined: card declined \[attempts=1\]\n",
                        failed.stderr), failed.stderr
    canceled = _waited(run, lf, "waiter", cancel="waiter")
    assert canceled.exit_code == 1 and " canceled" in canceled.stderr


def test_trigger_wait_exits_3_when_it_times_out_and_says_why(run: Any) -> None:
    late = run("trigger", "greet", "--wait", "--timeout", "0.3")
    assert late.exit_code == 3
    assert re.fullmatch(r"run \S+ is still pending after 0.3s; no worker may be running "
                        r"\(start one with `ledgerflow worker`\)\n", late.stderr), late.stderr


def test_options_refuse_what_they_cannot_mean(run: Any) -> None:
    status = run("runs", "list", "--status", "done")
    assert status.exit_code == 2
    assert ("'done' is not one of 'pending', 'running', 'suspended', 'compensating', "
            "'completed', 'failed', 'canceled'") in status.stderr
    assert run("runs", "list", "--status", "failed").exit_code == 0
    purge = run("outbox", "purge", "--older-than", "1")
    assert purge.exit_code == 2
    assert "give a number and its unit, such as 90s, 15m, 12h or 7d" in purge.stderr
    assert run("outbox", "purge", "--older-than", "7d").stdout == "purged 0 published row(s)\n"


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_help_text_explains_every_option_without_type_placeholders() -> None:
    found = list(_commands(get_command(app)))
    assert len(found) > 20
    for path, command in found:
        helped = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert helped.exit_code == 0, path
        assert not re.search(r"<\w+[^>]*>|\{\w+\}", helped.stdout), (path, helped.stdout)
        assert "Register with typer" not in helped.stdout and "DESIGN" not in helped.stdout
        assert max(map(len, helped.stdout.splitlines())) <= 80, path
        assert command.help, path
        for param in command.params:
            if param.name != "help":
                assert getattr(param, "help", None), (path, param.name)
