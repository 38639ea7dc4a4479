"""The README as a new user reads it: the walkthrough runs as written in a new
directory from a fresh shell, its example imports only what it uses, every setting is
listed, and no source file sends the reader to a document the repository lacks."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from ledgerflow.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_the_walkthrough_runs_as_written_in_a_new_directory(tmp_path: Path) -> None:
    section = _section("Writing a workflow")
    (tmp_path / "booking.py").write_text(_blocks(section, "python")[0])
    script = _blocks(section, "bash")[0]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LEDGERFLOW_") and k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # "activated"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:  # the worker keeps them open
        shell = subprocess.Popen(["bash", "-e", "-c", script], cwd=tmp_path, env=env,
                                 stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        assert shell.wait(timeout=120) == 0, err.read_text()
        assert "triggered run B-1" in out.read_text() and "Traceback" not in err.read_text()
        show = ["ledgerflow", "runs", "show", "B-1", "--json"]
        deadline = time.monotonic() + 60
        while (run := json.loads(subprocess.run(show, cwd=tmp_path, env={
                **env, "LEDGERFLOW_DATABASE_URL": "sqlite:///booking.db"},
                capture_output=True, text=True, check=True).stdout))["status"] != "completed":
            assert time.monotonic() < deadline, run
            time.sleep(0.2)
        assert run["result"]["approvedBy"] == "ops@example.com"
    finally:
        os.killpg(shell.pid, signal.SIGKILL)  # the worker the script left running
        shell.wait()


def test_the_example_imports_only_what_it_uses() -> None:
    tree = ast.parse(_blocks(_section("Writing a workflow"), "python")[0])
    imported = {alias.asname or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom | ast.Import) for alias in node.names}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert imported and imported <= used, imported - used


def test_every_setting_is_listed_with_its_default() -> None:
    rows = re.findall(r"^\| `(LEDGERFLOW_\w+)` \| ([^|]+) \|", _section("Settings"), re.M)
    listed = {name for name, default in rows if default.strip()}
    assert listed == {f"LEDGERFLOW_{name.upper()}" for name in Settings.model_fields}


def test_no_source_file_refers_to_a_document_the_repository_lacks() -> None:
    offenders = []
    for folder in ("ledgerflow", "domain", "eventstore", "projections", "outbox", "tests",
                   "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if ".venv" in path.relative_to(ROOT).parts:
                continue  # bench/run's virtualenv: installed packages, not ours
            for found in re.findall(r"[\w./-]*\b[A-Za-z_-]+\.md\b", path.read_text()):
                if not (ROOT / found).exists() and not (path.parent / found).exists():
                    offenders.append(f"{path.relative_to(ROOT)}: {found}")
    assert offenders == []


def test_the_async_example_runs_to_completion(tmp_path: Path) -> None:
    """The async twin in "Writing a workflow" runs as written: triggered, woken by the
    clock and the signal, completed, with its async steps, thread step and parallel."""
    (tmp_path / "booking_async.py").write_text(
        _blocks(_section("Writing a workflow"), "python")[1])
    script = """
from datetime import timedelta
import booking_async  # registers the workflow
from ledgerflow.testing import FakeClock, open_test_engine, run_to_completion

clock = FakeClock()
engine = open_test_engine(clock=clock)
run = engine.trigger("booking-async", {"id": "B-2", "amount": 100,
                                      "email": "ada@example.com"}).run_id
run_to_completion(engine, run)
clock.advance(timedelta(seconds=2))
run_to_completion(engine, run)
engine.signal(run, "approval", "ops@example.com")
print(repr(run_to_completion(engine, run).result))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert result == {"hold": {"hold": "H-B-2"}, "quote": 120.0,
                      "approvedBy": "ops@example.com",
                      "sent": {"email": {"email": "ada@example.com"},
                               "sms": {"sms": "ada@example.com"}}}
