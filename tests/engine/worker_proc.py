"""A worker process for crash and multi-process tests.

`python -m tests.engine.worker_proc URL COUNTERS MODE [RUN_ID]`:
- `until-done RUN_ID`: tick with a 1 s lease until the run is terminal;
- `worker`: a `Worker` with SIGTERM handling, until stopped;
- `eager RUN_ID`: a `Worker` (30 s lease), then an eager trigger of "three-effects"
  (tag "e") with that run id; the parent arms a fault point that ends the process.
Fault points are armed through `LEDGERFLOW_FAULTS` by the parent test: this module
is the process's edge, so it reads them from `Settings` and gives them to its engine.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ledgerflow import Context, Engine, Settings, Worker, WorkflowRegistry
from ledgerflow.eventstore import EventStore, create_engine
from ledgerflow.runtime.faults import FaultPoints

registry = WorkflowRegistry()
COUNTERS = Path(".")


def effect(name: str) -> dict[str, Any]:
    """A side effect that leaves a trace: one line per execution."""
    with (COUNTERS / name).open("a") as fh:
        fh.write("x\n")
    return {"step": name}


def slow_effect(name: str) -> dict[str, Any]:
    (COUNTERS / f"{name}.started").write_text("1")
    time.sleep(1.0)
    return effect(name)


@registry.workflow("three-effects")
def three_effects(ctx: Context, data: Any) -> Any:
    return [ctx.step(n, effect, f"{data['tag']}-{n}") for n in ("a", "b", "c")]


@registry.workflow("slow-then-fast")
def slow_then_fast(ctx: Context, data: Any) -> Any:
    ctx.step("slow", slow_effect, "slow")
    return ctx.step("fast", effect, "fast")


def count(counters: Path, name: str) -> int:
    path = counters / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def make_engine(url: str, lease: float = 1.0, faults: FaultPoints | None = None) -> Engine:
    return Engine(EventStore(create_engine(url)), registry, lease=timedelta(seconds=lease),
                  faults=faults)


def main(argv: list[str]) -> int:
    global COUNTERS
    url, COUNTERS, mode = argv[0], Path(argv[1]), argv[2]
    faults = Settings().fault_points()
    engine = make_engine(url, faults=faults)
    if mode == "until-done":
        deadline = time.monotonic() + 60
        while not engine.state(argv[3]).is_terminal:
            if time.monotonic() > deadline:
                return 3
            if engine.tick().claimed == 0:
                time.sleep(0.05)
        return 0
    if mode == "eager":
        return _eager(url, argv[3], faults)
    worker = Worker(engine, threads=2, poll_interval=0.05)
    worker.install_signal_handlers()
    (COUNTERS / f"ready-{os.getpid()}").write_text("1")
    worker.run()
    return 0


def _eager(url: str, run_id: str, faults: FaultPoints) -> int:
    engine = make_engine(url, lease=30.0, faults=faults)
    Worker(engine, threads=1, poll_interval=0.05).start()
    engine.trigger("three-effects", {"tag": "e"}, run_id=run_id, eager=True)
    time.sleep(60)  # the armed fault point ends the process before this returns
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
