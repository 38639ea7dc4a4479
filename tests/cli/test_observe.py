"""`ledgerflow doctor` (table, --json, exit codes) and `ledgerflow metrics`."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.engine import Engine as SAEngine

from ledgerflow._app import Ledgerflow
from ledgerflow.outbox._schema import DEAD, outbox
from tests.cli.conftest import Cli, cli_env
from tests.cli.test_serve import start_serve


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


def test_serve_logs_json_lines_and_serves_its_metrics(
        pg_engine: SAEngine, pg_url: str, tmp_path: Path) -> None:
    env = cli_env(pg_url, tmp_path, LEDGERFLOW_LOG_FORMAT="json", LEDGERFLOW_LOG_LEVEL="INFO")
    for served in start_serve(env, "--no-relay", "--no-projector"):
        run = served.run_until_terminal("fragile", {"ok": False})
        assert run["status"] == "failed"
        metrics = served.http.get("/metrics").text
        assert ('ledgerflow_runs_finished_total{status="failed",workflow="fragile"} 1.0'
                in metrics)
        assert served.terminate() == 0
        _out, err = served.process.communicate()
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    failed = [x for x in lines if x["logger"] == "ledgerflow.executor"]
    assert failed and failed[0]["run_id"] == run["id"] and failed[0]["step"] == "second"
    assert "card declined" in failed[0]["traceback"]
    assert err.count("Traceback (most recent call last)") == len(failed)  # once per attempt
