"""`ledgerflow audit verify` and `ledgerflow archive run|list|restore`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ledgerflow._app import Ledgerflow
from ledgerflow.testing import relay_to_sink, run_to_completion


def _greeted(lf: Ledgerflow) -> str:
    run_id = lf.engine.trigger("greet", "ada").run_id
    run_to_completion(lf.engine, run_id)
    return run_id


def test_audit_verify_passes_then_names_the_tampered_version(run: Any, lf: Ledgerflow) -> None:
    run_id = _greeted(lf)
    done = run("audit", "verify", run_id)
    assert done.exit_code == 0, done.output
    assert f"ok   {run_id}" in done.output
    with lf.db.begin() as conn:
        conn.execute(sa.text("UPDATE events SET recorded_at = recorded_at + interval '1 second'"
                             " WHERE stream_id = :r AND version = 2"), {"r": run_id})
    done = run("audit", "verify", run_id)
    assert done.exit_code == 1
    assert f"FAIL {run_id}: version 2" in done.output
    done = run("audit", "verify", "--all", "--json")
    assert done.exit_code == 1
    [report] = json.loads(done.output)["data"]
    assert (report["runId"], report["verified"], report["firstBadVersion"]) == (run_id, False, 2)
    assert run("audit", "verify").exit_code == 2  # neither a run nor --all


def test_archive_run_list_restore(run: Any, lf: Ledgerflow, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _greeted(lf)
    relay_to_sink(lf)
    before = lf.store.stored_stream(run_id)
    monkeypatch.setenv("LEDGERFLOW_ARCHIVE_DIR", str(tmp_path / "archive"))
    assert "no archived runs" in run("archive", "list").output
    monkeypatch.setenv("LEDGERFLOW_RETENTION_DAYS", "0.000001")  # 0.09 s
    time.sleep(0.2)
    done = run("archive", "run")
    assert done.exit_code == 0, done.output
    assert "archived 1 runs" in done.output
    assert lf.store.stored_stream(run_id) == []
    listed = json.loads(run("archive", "list", "--json").output)["data"]
    assert [(r["runId"], r["workflowId"], r["events"]) for r in listed] == \
        [(run_id, "greet", len(before))]
    done = run("archive", "restore", run_id)
    assert done.exit_code == 0, done.output
    assert lf.store.stored_stream(run_id) == before
    done = run("archive", "restore", "nope")
    assert done.exit_code == 1 and "no archive" in done.output
