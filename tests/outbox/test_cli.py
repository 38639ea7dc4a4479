"""`ledgerflow outbox ...` against a SQLite database, as an operator runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from ledgerflow.cli.outbox import app, parse_duration
from ledgerflow.cli.relay import relay_command
from ledgerflow.eventstore import EventStore
from ledgerflow.outbox import DEAD, JsonlSinkPublisher, OutboxWriter, Relay, dead_letters
from tests.outbox._support import FailingFor, append_run, run_history, status_counts

runner = CliRunner()


@pytest.fixture
def db(sqlite_engine: Engine, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
       tmp_path: Path) -> Engine:
    monkeypatch.setenv("LEDGERFLOW_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("LEDGERFLOW_SINK_PATH", str(tmp_path / "sink.jsonl"))
    monkeypatch.delenv("LEDGERFLOW_KAFKA_BOOTSTRAP", raising=False)
    store = EventStore(sqlite_engine, hooks=[OutboxWriter()])
    for fail in (False, True):
        append_run(store, run_history(steps=0, fail=fail))
    relay = Relay(sqlite_engine, FailingFor(JsonlSinkPublisher(tmp_path / "s"), "RunFailed"),
                  max_attempts=1)
    while relay.run_once().claimed:
        pass
    return sqlite_engine


def test_status_json_counts_rows(db: Engine) -> None:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["pending"], report["published"], report["dead"]) == (0, 6, 1)
    assert "dead 1" in runner.invoke(app, ["status"]).output


def test_dlq_list_and_replay_by_id(db: Engine) -> None:
    listed = json.loads(runner.invoke(app, ["dlq", "list", "--json"]).output)["data"]
    assert [(d["eventType"], d["attempts"], d["errorClass"]) for d in listed] == \
        [("RunFailed", 1, "RuntimeError")]

    replayed = runner.invoke(app, ["dlq", "replay", "--id", str(listed[0]["id"])])
    assert replayed.exit_code == 0 and "replayed 1" in replayed.output
    assert dead_letters(db) == []
    assert runner.invoke(app, ["dlq", "replay", "--id", "999"]).exit_code == 1


def test_relay_once_drains_replayed_row_into_the_sink(db: Engine, tmp_path: Path) -> None:
    assert runner.invoke(app, ["dlq", "replay", "--limit", "5"]).exit_code == 0
    relay_command(once=True)
    assert status_counts(db) == {"published": 7}
    sink = [json.loads(line) for line in (tmp_path / "sink.jsonl").read_text().splitlines()]
    assert [line["value"]["eventType"] for line in sink] == ["RunFailed"]


def test_purge_keeps_recent_rows_and_dead_ones(db: Engine) -> None:
    assert "purged 0" in runner.invoke(app, ["purge", "--older-than", "1h"]).output
    assert "purged 6" in runner.invoke(app, ["purge", "--older-than", "0s"]).output
    assert status_counts(db) == {DEAD: 1}
    assert parse_duration("7d").total_seconds() == 7 * 86400
    assert runner.invoke(app, ["purge", "--older-than", "soon"]).exit_code != 0


def test_dlq_discard_gives_up_a_dead_row(db: Engine) -> None:
    dead = dead_letters(db)[0].id
    discarded = runner.invoke(app, ["dlq", "discard", str(dead)])
    assert discarded.exit_code == 0 and f"discarded 1 dead row(s): {dead}" in discarded.output
    assert dead_letters(db) == []
    assert status_counts(db) == {"published": 6, "discarded": 1}
    assert "discarded 1" in runner.invoke(app, ["status"]).output
    assert runner.invoke(app, ["dlq", "discard", str(dead)]).exit_code == 1  # not dead now
    assert runner.invoke(app, ["dlq", "discard"]).exit_code != 0  # an id is required
