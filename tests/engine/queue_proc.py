"""A worker process for the multi-process queue test.

`python -m tests.engine.queue_proc URL DIR`: a `Worker` (4 threads) over the registry
below until SIGTERM. Each execution of workflow "limited" writes one line
`key start end` (unix seconds, taken inside the step) to `DIR/intervals-<pid>`.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ledgerflow import Context, Engine, Queue, Worker, WorkflowRegistry
from ledgerflow.eventstore import EventStore, create_engine
from ledgerflow.projections import InlineProjections

registry = WorkflowRegistry()
OUT = Path(".")


def work(key: str) -> str:
    start = time.time()
    time.sleep(1.0)  # long enough that the slots, not the CPU, bound how many run at once
    end = time.time()
    with (OUT / f"intervals-{os.getpid()}").open("a") as fh:
        fh.write(f"{key} {start:.6f} {end:.6f}\n")
    return key


@registry.workflow("limited", queue=Queue("limited", concurrency=5, per_key_concurrency=2))
def limited(ctx: Context, data: Any) -> Any:
    return ctx.step("work", work, data["key"])


def main(argv: list[str]) -> int:
    global OUT
    url, OUT = argv[0], Path(argv[1])
    store = EventStore(create_engine(url), hooks=[InlineProjections()])
    engine = Engine(store, registry, lease=timedelta(seconds=10))
    worker = Worker(engine, threads=4, poll_interval=0.05)
    worker.install_signal_handlers()
    (OUT / f"ready-{os.getpid()}").write_text("1")
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
