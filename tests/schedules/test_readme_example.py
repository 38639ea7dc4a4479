"""The README's schedules example runs as written, in a new directory from a fresh shell."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n### Schedules\n")
    return readme[start:readme.index("\n## ", start)]


def test_the_schedules_example_runs_as_written(tmp_path: Path) -> None:
    section = _section()
    (tmp_path / "report.py").write_text(re.findall(r"```python\n(.*?)```", section, re.S)[0])
    script = re.findall(r"```bash\n(.*?)```", section, re.S)[0]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LEDGERFLOW_") and k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["COLUMNS"] = "80"
    shell = subprocess.Popen(["bash", "-e", "-c", script], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        out, err = shell.communicate(timeout=300)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
    assert shell.returncode == 0, err
    assert re.search(r"heartbeat +heartbeat +every 2s +active", out), out
    assert re.search(r"nightly-report +nightly-report +30 2 \* \* \* +active", out), out
    assert re.search(r"heartbeat@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z)? +heartbeat@1 +completed",
                     out), out
    assert "schedule every-minute: heartbeat, * * * * * UTC, active" in out
    assert "schedule heartbeat: heartbeat, every 2s, paused, next -" in out
    assert re.search(r"^nightly-report@\S+Z$", out, re.M), out
    assert "Traceback" not in err
