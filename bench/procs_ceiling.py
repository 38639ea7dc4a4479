"""The multi-process worker against the machine's CPU ceiling (used by workflows.py).

`ledgerflow worker --processes P` (P = cores, 4 threads each; `WF_PROCS` overrides P;
P = 1 is one worker process, no supervisor) runs in child processes on the bench
database; this process triggers N `bench3` runs (3 trivial steps) from 4
client threads into the queue and polls until all completed. CPU is measured over the
same interval: this process (`time.process_time`), the worker processes (their
/proc/PID/stat utime+stime) and the postgres backends serving the bench database
(their process title names it: other databases' work on the server is not counted; a
backend that exits during the run loses its share, so all connect before).

- `wf_cpu_ceiling_per_s` = cores / (CPU-seconds per workflow, client + workers +
  PostgreSQL): the throughput the machine could reach if that CPU were all it did;
- `wf_vs_cpu_ceiling` = measured workflows/s / that ceiling. Worked out, it is the CPU
  this run's processes used / (cores x wall time): the share of the machine the run
  kept busy. On a quiet machine, what it misses is time the product idled (children
  waiting for a poll, the supervisor, round trips). On a machine shared with other
  work it is bounded by the share the others leave, whatever the product does: the
  0.09-0.17 measured at load averages of 10-25 said that, not that workers idled.
- `wf_vs_cpu_available` = the same CPU / (cores x wall - the CPU everything else on
  the machine used meanwhile, from /proc/stat): the share of the CPU left to this run
  that it used. Equal to the former on a quiet machine; on a loaded one, a value near
  1 says the machine never idled while runs waited (the product kept up with what it
  got), a low one that it did (children idling, a bottleneck). Printed beside it with
  the machine's busy share and each worker process's CPU (all of them should work).

Completion is polled on `run_status_counts` (the product's O(1) count of finished
runs), not a count over `run_views` that grows with every completed run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

WORKFLOWS = '''from ledgerflow import Context, workflow


def step_a(): return {"a": 1}
def step_b(): return {"b": 2}
def step_c(): return {"c": 3}


@workflow("bench3")
def bench3(ctx: Context, data):
    return {**ctx.step("a", step_a), **ctx.step("b", step_b), **ctx.step("c", step_c)}
'''


def _proc_cpu(pid: int) -> float:
    rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu(database: str) -> float:
    """CPU seconds of the postgres backends serving `database` (their process title
    names it), so other databases' work on a shared server is not counted."""
    total = 0.0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().decode(errors="replace")
            if title.startswith("postgres:") and f" {database} " in title:
                total += _proc_cpu(int(cmdline.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


def _machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine since boot (/proc/stat: busy is
    everything but idle and iowait; guest time is inside user already)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(ticks[:8])  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    hz = os.sysconf("SC_CLK_TCK")
    return (total - idle) / hz, total / hz


def _transactions(engine_sa: sa.engine.Engine) -> int:
    """Transactions the bench database has committed or rolled back so far (PostgreSQL's
    statistics, which lag up to half a second: read after the run's end settles)."""
    time.sleep(0.6)
    with engine_sa.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()")).scalar_one())


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def ceiling(url: str, engine_sa: sa.engine.Engine, n: int) -> dict[str, float]:
    from ledgerflow import Ledgerflow, Settings

    cores = os.cpu_count() or 1
    processes = int(os.environ.get("WF_PROCS", cores))  # the supervisor's children
    directory = Path(tempfile.mkdtemp(prefix="ledgerflow-bench-procs-"))
    (directory / "bench_procs_wf.py").write_text(WORKFLOWS)
    env = {**os.environ, "LEDGERFLOW_DATABASE_URL": url,
           "LEDGERFLOW_WORKFLOWS": str(directory / "bench_procs_wf.py"),
           "LEDGERFLOW_LOG_LEVEL": "WARNING"}
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow", "worker", "--processes", str(processes),
         "--threads", "4", "--poll-interval", "0.2"], env=env, cwd=directory,
        stdout=subprocess.DEVNULL)
    lf = Ledgerflow.open(Settings(database_url=url, workflows=env["LEDGERFLOW_WORKFLOWS"],
                                  kafka_bootstrap=None, sink_path="/dev/null"))
    try:
        for i in range(20):  # warm up: every child is up and has run something
            lf.engine.wait(lf.engine.trigger("bench3", {"w": i}).run_id, timeout=300)
        return _measure(lf, engine_sa, n, cores, _children(supervisor.pid) or [supervisor.pid])
    finally:
        lf.close()
        supervisor.terminate()
        supervisor.wait(120)


def _measure(lf: Any, engine_sa: sa.engine.Engine, n: int, cores: int,
             workers: list[int]) -> dict[str, float]:
    query = sa.text("SELECT coalesce(sum(runs), 0) FROM run_status_counts "
                    "WHERE status = 'completed'")
    with engine_sa.connect() as conn:
        before = conn.execute(query).scalar_one()
    database = str(engine_sa.url.database)
    tx0 = _transactions(engine_sa)
    pg0 = _postgres_cpu(database)
    w0 = [_proc_cpu(w) for w in workers]
    m0, c0, t0 = _machine_cpu(), time.process_time(), time.perf_counter()

    def client(k: int) -> None:
        for i in range(k, n, 4):
            lf.engine.trigger("bench3", {"i": i}, eager=False)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    done = 0
    while done < n:
        time.sleep(0.05)
        with engine_sa.connect() as conn:
            done = conn.execute(query).scalar_one() - before
    wall = time.perf_counter() - t0
    for thread in threads:
        thread.join()
    client_cpu = time.process_time() - c0
    each = [_proc_cpu(w) - w0[i] for i, w in enumerate(workers)]
    worker_cpu = sum(each)
    pg1, m1 = _postgres_cpu(database), _machine_cpu()
    tx = (_transactions(engine_sa) - tx0) / n
    ours = client_cpu + worker_cpu + pg1 - pg0
    cpu_per_wf = ours / n
    per_s, ceiling_per_s = n / wall, cores / cpu_per_wf
    busy, elapsed = m1[0] - m0[0], m1[1] - m0[1]  # elapsed: cores x wall, as /proc counts
    others = max(0.0, busy - ours)
    available = max(ours, elapsed - others)
    print(f"{len(workers)} worker processes: {per_s:.1f} wf/s; CPU per workflow "
          f"{cpu_per_wf * 1000:.2f} ms (client {client_cpu / n * 1000:.2f}, "
          f"workers {worker_cpu / n * 1000:.2f}, "
          f"postgres {(pg1 - pg0) / n * 1000:.2f}); ceiling {ceiling_per_s:.1f} wf/s on "
          f"{cores} cores")
    print(f"machine {busy / elapsed:.0%} busy, this run {ours / elapsed:.0%} of it, the rest "
          f"{others / elapsed:.0%}; each worker process's CPU: "
          f"{', '.join(f'{c:.2f}s' for c in each)} over {wall:.1f}s; {tx:.1f} transactions "
          f"per workflow on the database (the completion polls included)")
    return {"wf_cpu_ceiling_per_s": ceiling_per_s, "wf_vs_cpu_ceiling": per_s / ceiling_per_s,
            "wf_vs_cpu_available": ours / available}
