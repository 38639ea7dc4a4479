"""`ledgerflow workflows list|graph`: what is registered, and a flow's graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledgerflow.flows import mermaid
from tests.cli._flows import ORDER
from tests.cli.conftest import Cli, cli_env


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = cli_env(f"sqlite:///{tmp_path}/cli.db", tmp_path)
    env["LEDGERFLOW_WORKFLOWS"] = "tests.api._workflows,tests.cli._flows"
    return Cli(env)


def test_list_prints_each_workflow_with_its_versions_and_kind(cli: Cli) -> None:
    listed = {row["name"]: {k: row[k] for k in ("name", "versions", "kind")}
              for row in cli.json("workflows", "list")["data"]}  # and GET /api/workflows' rest
    assert listed["order"] == {"name": "order", "versions": ["1", "2"], "kind": "flow"}
    assert listed["greet"] == {"name": "greet", "versions": ["1"], "kind": "code"}
    table = cli("workflows", "list").stdout
    order_line = next(line for line in table.splitlines() if " order " in line)
    assert "1, 2" in order_line and "flow" in order_line


def test_graph_prints_mermaid_by_default_and_json_on_request(cli: Cli) -> None:
    older = cli("workflows", "graph", "order", "--version", "1").stdout
    assert older == ORDER.mermaid()
    assert older.startswith("flowchart TD\n") and '-->|"pickup"|' in older
    latest = json.loads(cli("workflows", "graph", "order", "--format", "json").stdout)
    assert latest["version"] == "2"
    assert [n["id"] for n in latest["nodes"]] == ["__start__", "reserve", "__end__"]
    assert cli("workflows", "graph", "order", "--format", "mermaid").stdout == mermaid(latest)


def test_graph_of_a_code_first_or_unknown_workflow_fails_clearly(cli: Cli) -> None:
    plain = cli("workflows", "graph", "greet", ok=False)
    assert plain.returncode == 1 and "only workflows built with ledgerflow.flow()" in " ".join(
        plain.stderr.split())
    missing = cli("workflows", "graph", "nope", ok=False)
    assert missing.returncode == 1 and "no workflow 'nope'" in missing.stderr
