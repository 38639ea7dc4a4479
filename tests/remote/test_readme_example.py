"""The README's "Serving workflows over HTTP" example runs as written (on a free port
instead of 8000): a FastAPI service serving the workflow, a worker that does not import
it, and the trigger's output as the README shows it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests._broker import free_port

ROOT = Path(__file__).resolve().parents[2]


def _section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n### Serving workflows over HTTP\n")
    return readme[start:readme.index("\n### ", start + 1)]


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    """`shop.py` is the python block, the bash block runs in a new session."""
    python, bash, shown = re.findall(r"```(python|bash|)\n(.*?)```", _section(), re.S)
    assert (python[0], bash[0], shown[0]) == ("python", "bash", "")
    port = str(free_port())
    (tmp_path / "shop.py").write_text(python[1])
    script = bash[1].replace("8000", port)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LEDGERFLOW_") and k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:  # background jobs keep them open
        shell = subprocess.Popen(["bash", "-e", "-c", script], cwd=tmp_path, env=env,
                                 stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        assert shell.wait(timeout=180) == 0, err.read_text()
    finally:
        os.killpg(shell.pid, signal.SIGKILL)  # the service and worker it left running
        shell.wait()
    assert out.read_text().endswith("\n" + shown[1])  # after `db upgrade`'s lines
    assert "Traceback" not in (tmp_path / "worker.log").read_text()
