"""Output a person reads on an 80-column terminal: short ids and dates that do not
wrap, errors that show their message first, a rebuild bar that fits, and a projection
status that says "not started" before anything caught it up."""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow._app import Ledgerflow
from ledgerflow.cli.common import error_text
from ledgerflow.projections._schema import projection_checkpoints


def _lines(text: str) -> list[str]:
    lines = text.splitlines()
    assert lines and max(map(len, lines)) <= 80, text
    return lines


def test_runs_list_fits_80_columns_one_line_per_run(run: Any, lf: Ledgerflow) -> None:
    for n in range(3):
        done = run("trigger", "greet", "--input", '"x"', "--tenant", "acme", "--run-id",
                   f"{n}-a-rather-long-run-id-given-by-a-client-{'x' * 40}")
        assert done.exit_code == 0, done.output
    assert run("trigger", "parent").exit_code == 0
    lf.engine.run_due()
    lines = _lines(run("runs", "list").stdout)
    assert len(lines) == 1 + 5  # a header, then one line per run (the parent's child too)
    assert re.match(r"run id +workflow +status +parent +tenant +created", lines[0])
    for line in lines[1:]:
        assert re.search(r" \d{4}-\d\d-\d\d \d\d:\d\d$", line), line
    shown = {line.split()[0] for line in lines[1:]}
    assert "2-a-rather-long-run-id-given-by-a-client-" + "x" * 40 not in shown
    assert run("runs", "show", sorted(shown)[-1]).exit_code == 0  # a short id is a prefix


def test_error_cells_show_the_message_before_the_details(run: Any, lf: Ledgerflow) -> None:
    run_id = run("trigger", "fragile", "--input", '{"ok": false}').stdout.split()[2]
    lf.engine.run_due()
    lines = _lines(run("runs", "show", run_id[:8]).stdout)
    error = next(line for line in lines if line.lstrip().startswith("error "))
    assert error.split(None, 1)[1].startswith("StepFailed: step 'second' failed after"), error
    step = next(line for line in lines if line.startswith("│ second "))
    assert "Declined: card declined" in step
    assert error_text({"type": "Timeout", "message": "took too long", "step_id": "pay",
                       "details": {"seconds": 3, "cause": {"type": "X"}}}) == \
        "Timeout: took too long (step 'pay') [seconds=3]"


def test_projection_status_says_not_started_before_anything_caught_up(
        run: Any, lf: Ledgerflow, pg_engine: SAEngine) -> None:
    lf.engine.trigger("greet", "x")
    with pg_engine.begin() as conn:
        conn.execute(sa.delete(projection_checkpoints))
    lines = _lines(run("projections", "status").stdout)
    assert re.match(r"projection +mode +code +built +checkpoint +generation +lag +state",
                    lines[0])
    rows = [line for line in lines if line.startswith(("run_views ", "step_journal "))]
    assert len(rows) == 2 and all("not started" in r and " ok " not in r for r in rows), lines
    assert [r["started"] for r in json.loads(run("projections", "status", "--json").stdout)] \
        == [False, False]
    with pg_engine.connect() as conn:  # reading wrote nothing
        assert conn.execute(sa.select(sa.func.count()).select_from(
            projection_checkpoints)).scalar_one() == 0
    rebuilt = run("projections", "rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    bar = [line for line in _lines(rebuilt.stdout) if line.startswith("replay")]
    assert len(bar) == 1 and re.search(r" 1/1 .* ev/s .* eta ", bar[0]), bar
    after = run("projections", "status").stdout
    assert "not started" not in after and after.count(" ok ") == 2, after
