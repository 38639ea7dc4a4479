"""History at scale: do the everyday operations stay flat as history grows?

Two stores on PostgreSQL, one of SMALL finished runs (10,000) and one of LARGE
(1,000,000, about 9.4M events), each in its own database (`<bench db>_10k`,
`<bench db>_1m`). Each is built once and reused (a `bench_scale_marker` row says
it is complete; `SCALE_REBUILD=1` builds again):

1. `db upgrade`, then a sample of template runs goes through the product itself
   (the Engine's trigger, an in-process Worker executing them, the outbox relay
   publishing to the Tansu broker): completed, failed (a step that raises, rolled
   back) and canceled (waiting for a signal) runs of 3 workflows and 4 tenants;
2. every further run is a copy of a template run written in bulk by
   `INSERT ... SELECT` over `generate_series` (events, run views, tags, step
   journal, outbox rows): a new run id (uuid-shaped), new event ids, timestamps
   moved back by RUN_SPACING per run (the 1M store spans a year). Outbox rows are
   written only for the runs whose rows the relay's purge would still keep
   (published within `LEDGERFLOW_OUTBOX_RETENTION_HOURS`, default 7 days): the
   rest were published and purged long ago. The run status counts are folded from
   the run views (what `projections rebuild` does);
3. VACUUM ANALYZE (autovacuum's steady state).

Measured at each size, through the product (HTTP routes through the FastAPI app
in-process, `starlette.testclient`; no network): trigger (`POST /api/runs`),
claim (the worker's `queue.claim`), `GET /api/runs/{id}` of random finished runs,
`GET /api/runs?status=&workflowId=&tenantId=` five pages deep by cursor, the
history of random runs, `projections status`, the relay's outbox claim (in a
transaction rolled back), a `/metrics` rendering (store gauges read afresh).
The sizes alternate ROUNDS times; each figure is the median of the rounds' p50s.

Figures: `scale_{trigger,claim,get,list,history}_ratio` (p50 at 1M / p50 at
10k; target <= 1.5), `scale_bytes_per_event` (table + index bytes of the 1M
store per event), `metrics_scrape_ms` at both sizes (`metrics_scrape_ms` is
the 1M store's; `metrics_scrape_ms_10k`), `scale_projections_status_ratio`,
`scale_outbox_claim_ratio`.

Run: `LEDGERFLOW_BENCH_DB=ledgerflow_bench_scale bash bench/run scale`
(`SCALE_SIZES=10k=10000,1m=1000000` overrides the sizes).
"""

from __future__ import annotations

import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ledgerflow import Context, workflow

URL = os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL",
                     "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerflow_bench")
SIZES = dict((k, int(v)) for k, v in (p.split("=") for p in os.environ.get(
    "SCALE_SIZES", "10k=10000,1m=1000000").split(",")))
ROUNDS = int(os.environ.get("SCALE_ROUNDS", "3"))
SAMPLES = int(os.environ.get("SCALE_SAMPLES", "200"))
FORMAT = 1  # bump when the build changes: a store of another format is built again
RUN_SPACING = timedelta(seconds=30)  # one run every 30 s: 1M runs span a year
OUTBOX_KEPT = timedelta(days=7)  # the relay purges published rows older (the default)
CHUNK = 20_000  # runs copied per statement
WORKFLOWS = ("scale.orders", "scale.billing", "scale.reports")
TENANTS = ("acme", "globex", "initech", "umbrella")
OUTCOMES = ("completed",) * 16 + ("failed",) * 3 + ("canceled",)  # 80% / 15% / 5%


def _steps(ctx: Context, input: dict[str, Any]) -> dict[str, Any]:
    done = {}
    for i in range(6):
        done[f"s{i}"] = ctx.step(f"s{i}", lambda i=i: {"n": i, "ok": True})
    if input.get("fail"):
        ctx.step("charge", _boom, max_attempts=1)
    if input.get("wait"):
        ctx.wait_for_signal("approval")
    return done


def _boom() -> None:
    raise RuntimeError("card declined")


for _name in WORKFLOWS:
    workflow(_name, version="1")(_steps)


# --------------------------------------------------------------------------- build

def _database(label: str) -> str:
    server = sa.engine.make_url(URL)
    return server.render_as_string(hide_password=False).rsplit("/", 1)[0] + \
        f"/{server.database}_{label}"


def _built(url: str, runs: int) -> bool:
    from ledgerflow.eventstore.database import create_engine

    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT runs, format FROM bench_scale_marker")).first()
        engine.dispose()
    except sa.exc.SQLAlchemyError:
        return False
    return row is not None and tuple(row) == (runs, FORMAT)


def _templates(app: Any) -> list[str]:
    """Run one template per (workflow, tenant, outcome) through the product."""
    from ledgerflow.outbox import PENDING

    ids = []
    worker = app.worker(threads=4, poll_interval=0.2).start()
    try:
        for wf in WORKFLOWS:
            for tenant in TENANTS:
                for outcome in ("completed", "failed", "canceled"):
                    run = app.engine.trigger(
                        wf, {"customer": tenant, "fail": outcome == "failed",
                             "wait": outcome == "canceled"},
                        tenant_meta={"tenantId": tenant}, tags=[f"tier:{tenant[0]}"]).run_id
                    ids.append(run)
        for run in ids:
            state = _settle(app, run)
            assert state in ("completed", "failed", "suspended"), (run, state)
            if state == "suspended":
                app.engine.cancel(run, "no approval")
    finally:
        worker.stop()
    relay = app.relay()
    while relay.run_once().published:
        pass
    with app.db.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE status = :s"),
                            {"s": PENDING}).scalar_one()
    assert left == 0, f"{left} outbox rows left unpublished"
    return ids


def _settle(app: Any, run: str) -> str:
    from ledgerflow.projections.queries import get_run

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with app.db.connect() as conn:
            view = get_run(conn, run)
        if view is not None and view.status in ("completed", "failed", "suspended"):
            return str(view.status)
        time.sleep(0.1)
    raise TimeoutError(f"template run {run} did not settle")


def _columns(conn: sa.Connection, table: str) -> list[tuple[str, str]]:
    return [(str(n), str(t)) for n, t in conn.execute(sa.text(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = :t AND table_schema = current_schema() ORDER BY ordinal_position"),
        {"t": table})]


def _new_event_id(col: str) -> str:
    return f"md5({col} || ':' || s.g)::uuid::text"


SKIP_COLUMNS = {"position", "id"}  # serial keys: the database numbers the copies


def _expr(table: str, name: str, kind: str, id_column: str) -> str:
    if name == id_column:
        return "nid"
    if name == "event_id":
        return _new_event_id(f"t.{name}")
    if kind.startswith("timestamp"):
        return f"t.{name} - shift"
    if kind in ("jsonb", "json"):
        return f"replace(t.{name}::text, t.{id_column}, nid)::{kind}"
    if kind in ("text", "character varying"):
        if table == "outbox" and name in ("payload", "headers"):
            return f"replace(replace(t.{name}, t.{id_column}, nid), t.event_id, " \
                   f"{_new_event_id('t.event_id')})"
        return f"replace(t.{name}, t.{id_column}, nid)"
    return f"t.{name}"


def _copy_statement(conn: sa.Connection, table: str, id_column: str, order: str) -> str:
    cols = [(n, k) for n, k in _columns(conn, table) if n not in SKIP_COLUMNS]
    names = ", ".join(f'"{n}"' for n, _ in cols)
    exprs = ", ".join(_expr(table, n, k, id_column) for n, k in cols)
    return (f"WITH s AS MATERIALIZED (SELECT g, md5('r' || g)::uuid::text AS nid, "
            f"(:total - g) * interval '{RUN_SPACING.seconds} seconds' AS shift, m.tid "
            f"FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g "
            f"JOIN tmpl_slots m ON m.slot = (g * 7919) % :slots) "
            f"INSERT INTO {table} ({names}) SELECT {exprs} FROM s "
            f"JOIN tmpl_{table} t ON t.{id_column} = s.tid ORDER BY s.g, t.{order}")


def _weighted(templates: list[str]) -> list[str]:
    """Templates repeated by outcome weight (80% completed, 15% failed, 5% canceled)."""
    by_outcome = {o: templates[i::3] for i, o in enumerate(("completed", "failed", "canceled"))}
    out: list[str] = []
    for slot in range(len(OUTCOMES)):
        group = by_outcome[OUTCOMES[slot]]
        out.extend(group)
    return out


def build(label: str, runs: int) -> str:
    from ledgerflow._app import Ledgerflow
    from ledgerflow.eventstore.database import create_database
    from ledgerflow.settings import Settings

    server = sa.engine.make_url(URL)
    url = create_database(URL, f"{server.database}_{label}", replace=True)
    t0 = time.perf_counter()
    settings = Settings(database_url=url,
                        kafka_bootstrap=os.environ.get("LEDGERFLOW_BENCH_KAFKA_BOOTSTRAP"))
    app = Ledgerflow.open(settings)
    templates = _weighted(_templates(app))
    copies = runs - len(set(templates))
    keep_outbox = int(OUTBOX_KEPT / RUN_SPACING)
    with app.db.connect() as conn:
        conn.execute(sa.text("SET synchronous_commit = off"))
        conn.execute(sa.text("SET work_mem = '64MB'"))
        plans = [("events", "stream_id", "version", 1), ("run_views", "run_id", "run_id", 1),
                 ("run_tags", "run_id", "tag", 1), ("step_journal", "run_id", "step_id", 1),
                 ("outbox", "key", "id", max(1, copies - keep_outbox + 1))]
        conn.execute(sa.text("CREATE TEMP TABLE tmpl_slots (slot INTEGER PRIMARY KEY, tid TEXT)"))
        conn.execute(sa.text("INSERT INTO tmpl_slots VALUES (:slot, :tid)"),
                     [{"slot": i, "tid": t} for i, t in enumerate(templates)])
        statements = [(_copy_statement(conn, t, c, o), t, first) for t, c, o, first in plans]
        for table, column, _, _ in plans:  # the templates' rows, apart: a small hash join
            conn.execute(sa.text(f"CREATE TEMP TABLE tmpl_{table} AS SELECT * FROM {table} "
                                 f"WHERE {column} = ANY(CAST(:tmpl AS text[]))"),
                         {"tmpl": templates})
            conn.execute(sa.text(f"ANALYZE tmpl_{table}"))
        conn.commit()
        for lo in range(1, copies + 1, CHUNK):
            hi = min(copies, lo + CHUNK - 1)
            for sql, _table, first in statements:
                if hi < first:
                    continue
                conn.execute(sa.text(sql), {"lo": max(lo, first), "hi": hi, "total": copies,
                                            "slots": len(templates)})
            conn.commit()
            print(f"[{label}] {hi}/{copies} runs copied ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
        conn.execute(sa.text("CREATE TABLE bench_scale_marker (runs INTEGER, format INTEGER)"))
        conn.execute(sa.text("INSERT INTO bench_scale_marker VALUES (:r, :f)"),
                     {"r": runs, "f": FORMAT})
        conn.commit()
    with app.db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    app.close()
    print(f"[{label}] built in {time.perf_counter() - t0:.0f} s", flush=True)
    return url


# ------------------------------------------------------------------------- measure

def _p50(fn: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


class Store:
    """One store's product handles: app, HTTP client, a sample of finished run ids."""

    def __init__(self, label: str, url: str) -> None:
        from starlette.testclient import TestClient

        from ledgerflow._app import Ledgerflow
        from ledgerflow.api._factory import create_app
        from ledgerflow.settings import Settings

        self.label = label
        self.app = Ledgerflow.open(Settings(database_url=url, metrics_cache_seconds=0),
                                   upgrade=True)
        self.http = TestClient(create_app(self.app))
        with self.app.db.connect() as conn:
            self.total = conn.execute(sa.text("SELECT count(*) FROM run_views")).scalar_one()
            self.events = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
            sampled = "TABLESAMPLE SYSTEM (5)" if self.total > 100_000 else ""
            self.sample = list(conn.execute(sa.text(  # random finished runs
                f"SELECT run_id FROM run_views {sampled} "
                "WHERE status IN ('completed', 'failed', 'canceled') LIMIT 5000")).scalars())
        random.shuffle(self.sample)

    def measure(self) -> dict[str, float]:
        from ledgerflow.observability.metrics import Metrics
        from ledgerflow.projections import default_projections
        from ledgerflow.projections.status import status

        figures: dict[str, float] = {}
        triggered: list[str] = []

        def trigger(i: int) -> None:
            r = self.http.post("/api/runs", json={
                "workflowId": WORKFLOWS[i % 3], "input": {"customer": "acme"},
                "tenantMeta": {"tenantId": TENANTS[i % 4]}})
            assert r.status_code in (200, 201), r.text
            triggered.append(r.json()["id"])

        figures["trigger"] = _p50(trigger, SAMPLES)
        figures["outbox_claim"] = _p50(lambda _: self._outbox_claim(), 50)
        owner = f"bench-{uuid.uuid4()}"
        claimed: list[str] = []

        def claim(_: int) -> None:
            from ledgerflow.runtime import queue

            now = datetime.now(UTC)
            with self.app.db.begin() as conn:
                run = queue.claim(conn, owner, now, now + timedelta(minutes=5))
            assert run is not None
            claimed.append(run)

        figures["claim"] = _p50(claim, SAMPLES)
        figures["get"] = _p50(lambda i: self._ok(f"/api/runs/{self._pick(i)}"), SAMPLES)
        figures["history"] = _p50(
            lambda i: self._ok(f"/api/runs/{self._pick(-1 - i)}/history"), SAMPLES)
        cursor = self._deep_cursor()
        figures["list"] = _p50(lambda _: self._ok("/api/runs", self._list_params(cursor)),
                               SAMPLES // 2)
        figures["projections_status"] = _p50(
            lambda _: status(self.app.store, default_projections()), 50)
        metrics = Metrics(self.app.store, cache_seconds=0)
        figures["metrics_scrape"] = _p50(lambda _: metrics.render(), 20)
        for run in triggered:  # leave the store as found: finished runs only
            self.app.engine.cancel(run, "bench")
        while self.app.relay().run_once().published:
            pass
        return figures

    def _pick(self, i: int) -> str:
        return str(self.sample[i % len(self.sample)])

    def _ok(self, path: str, params: dict[str, Any] | None = None) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    @staticmethod
    def _list_params(cursor: str | None) -> dict[str, Any]:
        params = {"status": "completed", "workflowId": "scale.orders", "tenantId": "acme",
                  "limit": 50}
        return params if cursor is None else {**params, "cursor": cursor}

    def _deep_cursor(self) -> str | None:
        """The cursor of the 6th page (5 pages deep)."""
        cursor = None
        for _ in range(5):
            page = self._ok("/api/runs", self._list_params(cursor))
            if page["nextCursor"] is None:  # a store too small to go that deep
                break
            cursor = page["nextCursor"]
        return cursor

    def _outbox_claim(self) -> None:
        from ledgerflow.outbox._relay import claim

        with self.app.db.connect() as conn, conn.begin() as tx:
            rows = claim(conn, datetime.now(UTC), 500)
            assert rows
            tx.rollback()

    def bytes_per_event(self) -> float:
        with self.app.db.connect() as conn:
            size = conn.execute(sa.text(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"
                " AND c.relkind = 'r'")).scalar_one()
        return float(size) / self.events


def main() -> None:
    stores = {}
    for label, runs in SIZES.items():
        url = _database(label)
        if os.environ.get("SCALE_REBUILD") or not _built(url, runs):
            print(f"[{label}] building a store of {runs} finished runs", flush=True)
            url = build(label, runs)
        else:
            print(f"[{label}] reusing the store of {runs} finished runs", flush=True)
        if os.environ.get("SCALE_BUILD_ONLY"):
            continue
        stores[label] = Store(label, url)
    if not stores:
        return
    small, large = stores.values()
    results: dict[str, dict[str, list[float]]] = {s.label: {} for s in stores.values()}
    for r in range(ROUNDS):
        for store in (small, large) if r % 2 == 0 else (large, small):
            for name, value in store.measure().items():
                results[store.label].setdefault(name, []).append(value)
    med = {label: {k: statistics.median(v) for k, v in figs.items()}
           for label, figs in results.items()}
    for name in med[small.label]:
        print(f"{name:20} p50 {med[small.label][name]:8.2f} ms at {small.total} runs, "
              f"{med[large.label][name]:8.2f} ms at {large.total} runs "
              f"({large.events} events)")
    ratio = {k: med[large.label][k] / med[small.label][k] for k in med[small.label]}
    for name in ("trigger", "claim", "get", "list", "history"):
        print(f"BENCH scale_{name}_ratio {ratio[name]:.2f}")
    print(f"BENCH scale_bytes_per_event {large.bytes_per_event():.0f}")
    print(f"BENCH scale_projections_status_ratio {ratio['projections_status']:.2f}")
    print(f"BENCH scale_outbox_claim_ratio {ratio['outbox_claim']:.2f}")
    print(f"BENCH metrics_scrape_ms_10k {med[small.label]['metrics_scrape']:.1f}")
    print(f"BENCH metrics_scrape_ms {med[large.label]['metrics_scrape']:.1f}")


if __name__ == "__main__":
    main()
