"""`ledgerflow projections rebuild|status` against a real SQLite store."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from ledgerflow.cli import app
from ledgerflow.domain import events as ev
from ledgerflow.eventstore import EventStore, NewEvent, StreamAppend
from ledgerflow.projections import InlineProjections
from tests.projections.conftest import snapshot


def test_rebuild_and_status(sqlite_url: str, sqlite_engine: Engine,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_DATABASE_URL", sqlite_url)
    store = EventStore(sqlite_engine, hooks=[InlineProjections()])
    for _ in range(3):
        store.append(StreamAppend(str(uuid.uuid4()), [NewEvent(ev.RunCreated(
            workflow_id="wf", workflow_version="1")), NewEvent(ev.RunStarted())]))
    before = snapshot(sqlite_engine)
    runner = CliRunner()

    done = runner.invoke(app, ["projections", "rebuild"])
    assert done.exit_code == 0, done.output
    assert "rebuilt run_views, step_journal: 6 events" in done.output
    assert snapshot(sqlite_engine) == before

    one = runner.invoke(app, ["projections", "rebuild", "step_journal"])
    assert one.exit_code == 0, one.output
    shown = runner.invoke(app, ["projections", "status", "--json"])
    assert shown.exit_code == 0, shown.output
    rows = {r["name"]: r for r in json.loads(shown.output)}
    assert rows["run_views"]["tableGeneration"] == 2
    assert rows["step_journal"]["tableGeneration"] == 3
    assert rows["run_views"]["checkpoint"] == 6 and not rows["run_views"]["stale"]

    table = runner.invoke(app, ["projections", "status"])
    assert table.exit_code == 0 and "run_views" in table.output

    unknown = runner.invoke(app, ["projections", "rebuild", "nope"])
    assert unknown.exit_code == 2
