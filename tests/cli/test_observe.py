"""`ledgerflow doctor` (table, --json, exit codes) and `ledgerflow metrics`."""

from __future__ import annotations

import json

from ledgerflow._app import Ledgerflow
from ledgerflow.outbox._schema import DEAD, outbox
from tests.cli.conftest import Cli


def test_doctor_exits_0_when_ok_and_1_with_a_dead_letter(cli: Cli, lf: Ledgerflow) -> None:
    ok = cli("doctor", "--json")
    report = json.loads(ok.stdout)
    assert report["status"] == "ok"
    assert {c["name"] for c in report["checks"]} >= {"store", "schema", "dead_letters"}
    lf.engine.trigger("greet", "ada")
    with lf.db.begin() as conn:
        conn.execute(outbox.update().values(status=DEAD))
    warned = cli("doctor", ok=False)
    assert warned.returncode == 1, warned.stdout + warned.stderr
    assert "dead_letters" in warned.stdout and "warn" in warned.stdout
    assert "ledgerflow outbox dlq list" in warned.stdout


def test_metrics_prints_the_store_families(cli: Cli, lf: Ledgerflow) -> None:
    lf.engine.trigger("greet", "ada")
    out = cli("metrics").stdout
    assert 'ledgerflow_runs{status="pending"} 1.0' in out
    assert 'ledgerflow_queue_depth{queue="default"} 1.0' in out
    assert "ledgerflow_outbox_oldest_pending_seconds" in out
