"""The wheel as a user installs it: `ledgerflow.*` only, next to the user's own
`domain` and `outbox` packages.

The repository keeps `domain/`, `eventstore/`, `projections/` and `outbox/` at its
top level (symlinked into `ledgerflow/`); a wheel that shipped them as top-level
packages would shadow, or be shadowed by, a user's package of the same name.

The test builds the wheel from a copy of the source tree (pip, build isolation:
setuptools comes from the package index, as for any user), installs it — not
editable — into a fresh virtualenv without pip, and runs a user's script there
from a directory that holds packages `domain` and `outbox`. The fresh virtualenv
sees the project's third-party dependencies through one `.pth` line naming the
project's site-packages: a plain path line adds that directory to `sys.path` after
the virtualenv's own, and does not run the `.pth` files inside it (the editable
install's finder), so `ledgerflow` can only come from the wheel; the script
reports where each module came from and the test checks it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # 10-20 s: one wheel build and one virtualenv for the module

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("domain", "eventstore", "projections", "outbox")

USER_SCRIPT = '''
import json, sys, sysconfig
from pathlib import Path

import domain, outbox  # the user's own packages, found first on sys.path
from domain import pricing

import ledgerflow
import ledgerflow.api, ledgerflow.cli, ledgerflow.domain, ledgerflow.eventstore
import ledgerflow.outbox, ledgerflow.projections
from ledgerflow import Context, Ledgerflow, Settings, workflow
from ledgerflow.eventstore import EventStore


@workflow("user.quote")
def quote(ctx: Context, data: dict) -> dict:
    total = ctx.step("price", pricing.total, data["qty"], data["unit"])
    return {"total": total, "owner": domain.OWNER}


work = Path(sys.argv[1])
app = Ledgerflow.open(Settings(database_url=f"sqlite:///{work}/lf.db",
                               sink_path=str(work / "events.jsonl")))
run = app.engine.trigger("user.quote", {"qty": 3, "unit": 7})
app.engine.run_due()
state = app.engine.state(run.run_id)
relayed = app.relay().run_once()
app.close()
modules = {name: module.__file__ for name, module in sys.modules.items()
           if name in ("domain", "outbox", "domain.pricing")
           or name == "ledgerflow" or name.startswith("ledgerflow.")}
print(json.dumps({
    "site": sysconfig.get_paths()["purelib"], "modules": modules,
    "editable_finders": sorted(n for n in sys.modules if "editable" in n),
    "user_owner": [domain.OWNER, outbox.OWNER],
    "ledgerflow_domain_has_user_attr": hasattr(ledgerflow.domain, "OWNER"),
    "store": EventStore.__module__,
    "status": state.status.value, "result": state.result, "published": relayed.published,
}))
'''


def _copy_source(target: Path) -> Path:
    """The files a fresh clone has that the build reads (no venv, caches or builds)."""
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                    "__pycache__", ".*_cache", ".hypothesis", "*.db",
                                    "*.jsonl", "bench", "tests")
    shutil.copytree(REPO, target, symlinks=True, ignore=ignore)
    return target


def _run(*args: str | Path, cwd: Path, timeout: float = 120, **env: str) -> str:
    """Run a command with none of this process's Python or ledgerflow settings."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PYTHON", "LEDGERFLOW_", "VIRTUAL_ENV"))}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env={**clean, **env}, text=True,
                          capture_output=True, timeout=timeout, check=False)
    assert done.returncode == 0, (
        f"{' '.join(map(str, args))} exited {done.returncode}\n"
        f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}")
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = _copy_source(work / "src")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--wheel-dir", work / "dist", source, cwd=work, timeout=300)
    [built] = (work / "dist").glob("ledgerflow-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new virtualenv with the wheel installed (not editable), seeing the project's
    dependencies through a `.pth` path line."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         "--no-index", wheel, cwd=venv.parent)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=venv.parent).strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_project_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    yield venv


def test_the_wheel_holds_ledgerflow_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"ledgerflow", f"{wheel.name.split('-py')[0]}.dist-info"}, tops
    for layer in LAYERS:
        assert f"ledgerflow/{layer}/__init__.py" in names
        assert f"ledgerflow/{layer}/py.typed" in names
    for module in ("ledgerflow/domain/lifecycle.py", "ledgerflow/eventstore/store.py",
                   "ledgerflow/outbox/_relay.py", "ledgerflow/projections/rebuild.py",
                   "ledgerflow/runtime/engine.py", "ledgerflow/cli/__init__.py",
                   "ledgerflow/api/__init__.py", "ledgerflow/demo/workflows.py"):
        assert module in names
    top_level = zipfile.ZipFile(wheel).read(
        f"{wheel.name.split('-py')[0]}.dist-info/top_level.txt").decode().split()
    assert top_level == ["ledgerflow"]


def _user_project(root: Path) -> Path:
    """A user's project: packages `domain` and `outbox` of their own, and a script."""
    files = {
        "domain/__init__.py": 'OWNER = "user"\n',
        "domain/pricing.py": "def total(qty: int, unit: int) -> int:\n    return qty * unit\n",
        "outbox/__init__.py": 'OWNER = "user"\n',
        "app.py": textwrap.dedent(USER_SCRIPT),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_installed_wheel_works_next_to_user_packages_named_domain_and_outbox(
        fresh_venv: Path, tmp_path: Path) -> None:
    project = _user_project(tmp_path / "project")
    work = tmp_path / "work"
    work.mkdir()
    out = _run(fresh_venv / "bin" / "python", "app.py", work, cwd=project)
    facts: dict[str, Any] = json.loads(out.strip().splitlines()[-1])

    site = Path(facts["site"]).resolve()
    assert site.is_relative_to(fresh_venv.resolve())
    modules = {name: Path(path).resolve() for name, path in facts["modules"].items()}
    assert modules["domain"] == project.resolve() / "domain" / "__init__.py"
    assert modules["outbox"] == project.resolve() / "outbox" / "__init__.py"
    assert facts["user_owner"] == ["user", "user"]
    assert not facts["ledgerflow_domain_has_user_attr"]
    for layer in LAYERS:
        assert modules[f"ledgerflow.{layer}"] == site / "ledgerflow" / layer / "__init__.py"
    strays = {n: str(p) for n, p in modules.items()
              if n.startswith("ledgerflow") and not p.is_relative_to(site)}
    assert strays == {}, "ledgerflow modules loaded from outside the fresh virtualenv"
    assert len(modules) > 40  # the whole product was imported, not a stub
    assert facts["editable_finders"] == []
    assert facts["store"] == "ledgerflow.eventstore.store"

    assert (facts["status"], facts["result"]) == ("completed", {"total": 21, "owner": "user"})
    assert facts["published"] == 4  # RunCreated, RunStarted, StepCompleted, RunCompleted
    assert len((work / "events.jsonl").read_text().splitlines()) == 4


def test_installed_console_script_runs(fresh_venv: Path, tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    _run(fresh_venv / "bin" / "ledgerflow", "db", "upgrade", cwd=tmp_path,
         LEDGERFLOW_DATABASE_URL=f"sqlite:///{db}")
    assert db.stat().st_size > 0
