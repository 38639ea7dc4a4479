"""`serve` rebuilds, in the background, a projection whose code version changed."""

from __future__ import annotations

import time

import sqlalchemy as sa

from ledgerflow._app import Ledgerflow
from ledgerflow.cli.serve import ServeOptions, Services
from ledgerflow.projections import _checkpoints, default_projections, queries
from ledgerflow.settings import Settings


def test_serve_rebuilds_a_projection_built_by_an_older_version(sqlite_url: str) -> None:
    lf = Ledgerflow.open(Settings(database_url=sqlite_url))
    from ledgerflow import workflow

    @workflow("serve-rebuild.noop", registry=lf.engine.registry)
    def noop(ctx: object, data: object) -> object:
        return data

    runs = [lf.engine.trigger("serve-rebuild.noop", {"n": n}).run_id for n in range(3)]
    run_views = next(p for p in default_projections() if p.name == "run_views")
    with lf.db.begin() as conn:  # as if the live tables were built by an older release
        _checkpoints.ensure(conn, default_projections(), lf.clock())
        updated = conn.execute(sa.text("UPDATE projection_checkpoints SET version = 0 "
                                       "WHERE name = 'run_views'"))
        assert updated.rowcount == 1
    services = Services(lf, ServeOptions(api=False, worker=False, relay=False))
    services.start()
    try:
        deadline = time.monotonic() + 30
        version = 0
        while time.monotonic() < deadline:
            with lf.db.connect() as conn:
                version = conn.execute(sa.text(
                    "SELECT version FROM projection_checkpoints WHERE name = 'run_views'"
                )).scalar_one_or_none() or 0
            if version == run_views.version:
                break
            time.sleep(0.05)
        assert version == run_views.version
        with lf.db.connect() as conn:
            rebuilt = [queries.get_run(conn, run_id) for run_id in runs]
        assert all(r is not None and r.to_wire()["status"] == "pending" for r in rebuilt)
    finally:
        services.stop()
        lf.close()
