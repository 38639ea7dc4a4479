"""Read models rebuilt from the events: run views, step journal, audit history.

- `InlineProjections`: the append hook that keeps the live tables current in the
  append transaction (read-your-writes for the API).
- `Projector`: a catch-up projector for projections not maintained inline.
- `rebuild` / `rebuild_stale`: replay into fresh tables and swap them in.
- `projections.queries`: what the HTTP API and the CLI read.
"""

from ledgerflow.eventstore.migrations import POSTGRESQL, SQLITE, Migration
from ledgerflow.projections import _ddl
from ledgerflow.projections._base import Projection, Tables
from ledgerflow.projections._inline import InlineProjections, default_projections
from ledgerflow.projections._journal import COMPENSATE_SUFFIX, StepJournal
from ledgerflow.projections._runs import RunViews
from ledgerflow.projections.projector import FaultHook, Projector, no_faults
from ledgerflow.projections.rebuild import RebuildInProgress, RebuildReport, rebuild, rebuild_stale
from ledgerflow.projections.status import ProjectionStatus, status

MIGRATIONS: list[Migration] = [
    Migration("projections", 1, "run views, run tags, step journal, projection checkpoints",
              {POSTGRESQL: _ddl.V1_POSTGRESQL, SQLITE: _ddl.V1_SQLITE}),
    Migration("projections", 2, "run views: resumed_from, rerun_of, compensation, queue, "
              "priority and their list indexes; existing rows are rebuilt",
              {POSTGRESQL: _ddl.V2_POSTGRESQL, SQLITE: _ddl.V2_SQLITE}),
    Migration("projections", 3, "PostgreSQL: run_views index for run id prefixes",
              {POSTGRESQL: _ddl.V3_POSTGRESQL}),
    Migration("projections", 4, "run_status_counts: finished runs per status, sharded, "
              "filled from the run views",
              {POSTGRESQL: _ddl.V4_POSTGRESQL, SQLITE: _ddl.V4_SQLITE}),
]

__all__ = [
    "COMPENSATE_SUFFIX", "MIGRATIONS", "FaultHook", "InlineProjections", "Projection",
    "ProjectionStatus", "Projector", "RebuildInProgress", "RebuildReport", "RunViews",
    "StepJournal", "Tables", "default_projections", "no_faults", "rebuild", "rebuild_stale",
    "status",
]
