"""Workflow throughput and latency: ledgerflow vs DBOS Transact on the same PostgreSQL.

A workflow of 3 trivial steps (each returns a small dict), run (a) N times one
after another and (b) N times with 8 in flight (8 client threads, each
trigger -> wait for result). ledgerflow writes events, run queue rows, outbox
rows and inline projections; its worker has 8 threads in this process. DBOS runs
the same workload against its own database on the same server, in the same run.

ledgerflow triggers with `eager=True` (the run is started and leased to the
in-process worker in the trigger transaction, as DBOS's start_workflow runs the
workflow in the calling process) and uses the app's store (`build_store`: inline
projections + outbox writer hooks). It uses its own database `<bench db>_wf`
(`ledgerflow_bench_wf` by default; DBOS `<bench db>_dbos`) on the server of
LEDGERFLOW_BENCH_DATABASE_URL (TRUNCATEd here), so other benches on the bench
database, or a workflows bench on another (LEDGERFLOW_BENCH_DB), cannot clear it.

Figures: workflows/s for both and ratios, p50/p90 trigger-to-result latency,
statements and transactions per workflow (ledgerflow; statements are counted at
the driver, `psycopg.Cursor.execute`, so raw-cursor statements count too;
transactions as commit calls at the driver, `psycopg.Connection.commit`: a
one-statement transaction commits by itself in autocommit, and its commit call, which
then sends nothing, still marks it), and process CPU per workflow
(`time.process_time()` deltas over each phase / N: the client, the worker
threads and the driver, as DBOS's is).

Each phase runs WF_REPEATS times (5) and the median of each figure is used, for
both engines alike (with 3, one slow phase of this 2-core VM, ~2.7 ms of client CPU
per workflow where the others take ~2.2, could make the median: 2.63x and 3.06x DBOS
in two runs of one afternoon).

Then `wf_remote_conc8_per_s` and `wf_remote_vs_inline`: the same workflow dispatched
over HTTP to a workflow handler on loopback (see `bench/remote_dispatch.py`), and
`wf_obs_overhead` and `metrics_scrape_ms` (see `bench/obs_overhead.py`), and
`wf_cpu_ceiling_per_s`, `wf_vs_cpu_ceiling` for `ledgerflow worker --processes <cores>`
(see `bench/procs_ceiling.py`).

Run: `bash bench/run workflows` (env WF_N overrides N=500, WF_REPEATS the 5;
`WF_ONLY=obs` runs the observability phase alone, `WF_ONLY=procs` the worker processes,
`WF_ONLY=remote` the inline and remote conc8 phases).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

N = int(os.environ.get("WF_N", "500"))
REPEATS = int(os.environ.get("WF_REPEATS", "5"))
WORKER_THREADS = int(os.environ.get("WF_WORKER_THREADS", "8"))
URL = os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL",
                     "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerflow_bench")
_BENCH_DB = sa.engine.make_url(URL).database or "ledgerflow_bench"
DBOS_DB = f"{_BENCH_DB}_dbos"  # named after the bench database: two benches at once
LF_DB = os.environ.get("WF_LF_DB", f"{_BENCH_DB}_wf")  # (LEDGERFLOW_BENCH_DB) never share


def ensure_database(name: str) -> sa.engine.URL:
    """Create database `name` on the bench server if missing; its URL."""
    server = sa.engine.make_url(URL)
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).first():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.set(database=name)


def count_statements(counts: dict[str, int]) -> Callable[[], None]:
    """Count every statement and commit the driver sends (SQLAlchemy's and raw
    cursors'); returns the function that stops counting (so DBOS's phase runs on the
    unwrapped driver)."""
    import psycopg

    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["stmts"] += 1
        return execute(self, *args, **kwargs)

    def counted_many(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        params_seq = list(params_seq)
        counts["stmts"] += len(params_seq)  # one statement per parameter set (pipelined)
        return executemany(self, query, params_seq, **kwargs)

    commit = psycopg.Connection.commit

    def counted_commit(self: Any) -> None:
        counts["tx"] += 1
        commit(self)

    psycopg.Cursor.execute = counted  # type: ignore[method-assign]
    psycopg.Cursor.executemany = counted_many  # type: ignore[method-assign]
    psycopg.Connection.commit = counted_commit  # type: ignore[method-assign]

    def stop() -> None:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]
        psycopg.Connection.commit = commit  # type: ignore[method-assign]

    return stop


def step_a() -> dict[str, int]:
    return {"a": 1}


def step_b() -> dict[str, int]:
    return {"b": 2}


def step_c() -> dict[str, int]:
    return {"c": 3}


def machine_cpu() -> tuple[float, float, float]:
    """(all CPU seconds, idle seconds, CPU seconds of every postgres process) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    server = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1:text.rindex(")")].startswith("postgres"):
            rest = text[text.rindex(")") + 2:].split()
            server += int(rest[11]) + int(rest[12])
    return sum(fields) / tick, (fields[3] + fields[4]) / tick, server / tick


def measure_median(label: str, one: Callable[[int], Any], concurrency: int,
                   counts: dict[str, int] | None = None) -> dict[str, float]:
    """`measure` REPEATS times; the median of each figure (this VM's load drifts by
    +-10% within a minute: one phase is one sample, for both engines alike)."""
    runs = []
    for _ in range(REPEATS):
        if counts is not None:
            counts.update(stmts=0, tx=0)
        out = measure(label, one, concurrency)
        if counts is not None:
            out["stmts"], out["tx"] = counts["stmts"] / N, counts["tx"] / N
        runs.append(out)
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(f"{label + ' median':<28} {median['per_s']:8.1f} wf/s  p50 {median['p50_ms']:6.2f} ms"
          f"  p90 {median['p90_ms']:6.2f} ms  cpu {median['cpu_ms']:6.2f} ms/wf")
    return median


def measure(label: str, one: Callable[[int], Any], concurrency: int) -> dict[str, float]:
    """Run `one(i)` N times with `concurrency` client threads; throughput, latency, CPU."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = N // concurrency

    def client(offset: int) -> None:
        local = []
        for i in range(per_thread):
            t0 = time.perf_counter()
            one(offset + i)
            local.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(local)

    all0, idle0, pg0 = machine_cpu()
    cpu0, t0 = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=client, args=(k * per_thread,))
               for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    all1, idle1, pg1 = machine_cpu()
    done = per_thread * concurrency
    latencies.sort()
    out = {"per_s": done / wall, "p50_ms": statistics.median(latencies) * 1000,
           "p90_ms": latencies[int(len(latencies) * 0.9)] * 1000, "cpu_ms": cpu / done * 1000}
    print(f"{label:<28} {out['per_s']:8.1f} wf/s  p50 {out['p50_ms']:6.2f} ms  "
          f"p90 {out['p90_ms']:6.2f} ms  cpu {out['cpu_ms']:6.2f} ms/wf")
    busy = 1 - (idle1 - idle0) / max(all1 - all0, 1e-9)
    print(f"{'':<28} machine {busy * 100:3.0f}% busy of {os.cpu_count()} cores; all postgres "
          f"processes {(pg1 - pg0) / done * 1000:5.2f} ms CPU/wf; this process "
          f"{cpu / wall * 100:3.0f}% of a core")
    return out


# ------------------------------------------------------------------- ledgerflow


def fresh_lf_database() -> tuple[str, sa.engine.Engine]:
    """ledgerflow's bench database, migrated and emptied."""
    from ledgerflow.eventstore import create_engine
    from ledgerflow.eventstore.schema import metadata
    from ledgerflow.migrations import upgrade_all

    url = ensure_database(LF_DB).render_as_string(hide_password=False)
    engine_sa = create_engine(url, pool_size=20)
    upgrade_all(engine_sa)
    with engine_sa.begin() as conn:
        names = [t.name for t in metadata.sorted_tables if t.name != "schema_migrations"]
        existing = set(sa.inspect(conn).get_table_names())
        conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{n}"' for n in names if n in existing)
                             + " RESTART IDENTITY CASCADE"))
    return url, engine_sa


def bench_registry() -> Any:
    """A registry with the 3-step `bench3` workflow."""
    from ledgerflow import Context, WorkflowRegistry

    registry = WorkflowRegistry()

    @registry.workflow("bench3")
    def bench3(ctx: Context, data: Any) -> Any:
        a = ctx.step("a", step_a)
        b = ctx.step("b", step_b)
        c = ctx.step("c", step_c)
        return {**a, **b, **c}

    return registry


def bench3_client(engine: Any) -> Callable[[int], None]:
    """One client's call: trigger `bench3` eagerly on `engine`, wait, check its result
    (every ledgerflow phase measures this: inline, remote, observability off / on)."""

    def one(i: int) -> None:
        run = engine.trigger("bench3", {"i": i}, eager=True).run_id
        state = engine.wait(run)
        assert state.result == {"a": 1, "b": 2, "c": 3}, state

    return one


def bench_ledgerflow(phases: tuple[str, ...] = ("seq", "conc8")) -> dict[str, dict[str, float]]:
    from ledgerflow import Engine, Worker
    from ledgerflow._app import build_store
    from ledgerflow.settings import Settings

    url, engine_sa = fresh_lf_database()
    counts = {"stmts": 0, "tx": 0}
    stop_counting = count_statements(counts)
    registry = bench_registry()
    store = build_store(engine_sa, Settings(database_url=url))
    engine = Engine(store, registry)
    worker = Worker(engine, threads=WORKER_THREADS, poll_interval=1.0).start()
    one = bench3_client(engine)
    for i in range(40):
        one(i)
    results: dict[str, dict[str, float]] = {}
    for label, conc in (("seq", 1), ("conc8", 8)):
        if label not in phases:
            continue
        results[label] = measure_median(f"ledgerflow {label}", one, conc, counts)
        print(f"{'':<28} {results[label]['stmts']:.1f} statements, "
              f"{results[label]['tx']:.1f} transactions per workflow")
    worker.stop()
    engine_sa.dispose()
    stop_counting()
    return results


# ------------------------------------------------------------------------ DBOS


def bench_dbos() -> dict[str, dict[str, float]]:
    from dbos import DBOS

    db_url = ensure_database(DBOS_DB).set(drivername="postgresql").render_as_string(
        hide_password=False)
    DBOS(config={"name": "ledgerflow-bench", "system_database_url": db_url,
                 "log_level": "WARNING", "console_log_level": "WARNING"})

    @DBOS.step()
    def d_a() -> dict[str, int]:
        return step_a()

    @DBOS.step()
    def d_b() -> dict[str, int]:
        return step_b()

    @DBOS.step()
    def d_c() -> dict[str, int]:
        return step_c()

    @DBOS.workflow()
    def d_bench3(i: int) -> dict[str, int]:
        return {**d_a(), **d_b(), **d_c()}

    DBOS.launch()

    def one(i: int) -> None:
        handle = DBOS.start_workflow(d_bench3, i)
        assert handle.get_result() == {"a": 1, "b": 2, "c": 3}

    for i in range(40):
        one(i)
    results = {label: measure_median(f"dbos {label}", one, conc)
               for label, conc in (("seq", 1), ("conc8", 8))}
    DBOS.destroy()
    return results


def bench_obs() -> dict[str, float]:
    """Observability on vs off, and the /metrics scrape at 100k runs (`obs_overhead`).

    Loaded from its file: `bench/run` runs with PYTHONSAFEPATH, so bench/ is not on
    sys.path."""
    spec = importlib.util.spec_from_file_location(
        "obs_overhead", Path(__file__).with_name("obs_overhead.py"))
    assert spec is not None and spec.loader is not None
    obs_overhead = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(obs_overhead)

    url, engine_sa = fresh_lf_database()
    figures = {"wf_obs_overhead": obs_overhead.overhead(engine_sa, url, bench_registry(),
                                                        bench3_client, measure, REPEATS),
               "metrics_scrape_ms": obs_overhead.scrape_ms(engine_sa, url)}
    engine_sa.dispose()
    return figures


def bench_procs() -> dict[str, float]:
    """The multi-process worker against the CPU ceiling (`procs_ceiling`, loaded from its
    file as `obs_overhead` is)."""
    spec = importlib.util.spec_from_file_location(
        "procs_ceiling", Path(__file__).with_name("procs_ceiling.py"))
    assert spec is not None and spec.loader is not None
    procs_ceiling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(procs_ceiling)
    url, engine_sa = fresh_lf_database()
    figures: dict[str, float] = procs_ceiling.ceiling(url, engine_sa, N)
    engine_sa.dispose()
    return figures


def bench_remote(inline_per_s: float | None) -> dict[str, float]:
    """The remote dispatch phase (`remote_dispatch`, loaded from its file as
    `obs_overhead` is); `inline_per_s`: the inline conc8 figure (None: measured here)."""
    spec = importlib.util.spec_from_file_location(
        "remote_dispatch", Path(__file__).with_name("remote_dispatch.py"))
    assert spec is not None and spec.loader is not None
    remote_dispatch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(remote_dispatch)
    if inline_per_s is None:
        inline_per_s = bench_ledgerflow(("conc8",))["conc8"]["per_s"]
    url, engine_sa = fresh_lf_database()
    figures: dict[str, float] = remote_dispatch.bench_remote(
        url, engine_sa, measure_median, bench3_client, inline_per_s, WORKER_THREADS)
    engine_sa.dispose()
    return figures


def main() -> None:
    print(f"N={N} workflows of 3 steps per phase; PostgreSQL at {sa.engine.make_url(URL).host}")
    only = os.environ.get("WF_ONLY")
    if only in ("obs", "procs", "remote"):  # a reduced run of one phase
        phase = {"obs": bench_obs, "procs": bench_procs, "remote": lambda: bench_remote(None)}
        for name, value in phase[only]().items():
            print(f"BENCH {name} {value:.3f}")
        return
    lf = bench_ledgerflow()
    db = bench_dbos()
    print(f"conc8: ledgerflow {lf['conc8']['per_s']:.1f}/s vs DBOS {db['conc8']['per_s']:.1f}/s "
          f"= {lf['conc8']['per_s'] / db['conc8']['per_s']:.2f}x")
    print(f"seq:   ledgerflow {lf['seq']['per_s']:.1f}/s vs DBOS {db['seq']['per_s']:.1f}/s "
          f"= {lf['seq']['per_s'] / db['seq']['per_s']:.2f}x")
    figures = {
        "wf_conc8_per_s": lf["conc8"]["per_s"],
        "wf_conc8_vs_dbos": lf["conc8"]["per_s"] / db["conc8"]["per_s"],
        "wf_seq_per_s": lf["seq"]["per_s"],
        "wf_p50_ms": lf["seq"]["p50_ms"],
        "wf_p50_vs_dbos": lf["seq"]["p50_ms"] / db["seq"]["p50_ms"],
        "wf_cpu_ms": lf["seq"]["cpu_ms"],
        "wf_cpu_vs_dbos": lf["seq"]["cpu_ms"] / db["seq"]["cpu_ms"],
        "wf_tx_per_wf": lf["seq"]["tx"],
        "wf_stmts_per_wf": lf["seq"]["stmts"],
        **bench_remote(lf["conc8"]["per_s"]),
        **bench_obs(),
        **bench_procs(),
    }
    for name, value in figures.items():
        print(f"BENCH {name} {value:.3f}")


if __name__ == "__main__":
    main()
