"""The projections' DDL as released, per migration and per dialect.

History, not the current model: taken from a database the code of its release
created, and never edited (a later schema is a new migration). Today's tables are
`projections._schema`; a test proves a database migrated to head matches them.
"""

from __future__ import annotations

# ------------------- 1: run views, run tags, step journal, projection checkpoints

V1_POSTGRESQL = (
    """
CREATE TABLE run_views (
    run_id VARCHAR(200) NOT NULL,
    workflow_id VARCHAR(200) NOT NULL,
    workflow_version VARCHAR(50) NOT NULL,
    status VARCHAR(20) NOT NULL,
    input JSONB,
    result JSONB,
    error JSONB,
    waitpoint JSONB,
    wake_at TIMESTAMP WITH TIME ZONE,
    timeout_at TIMESTAMP WITH TIME ZONE,
    parent_run_id VARCHAR(200),
    parent_step_id VARCHAR(200),
    children JSONB NOT NULL,
    tenant_id VARCHAR(200),
    tenant_meta JSONB NOT NULL,
    tags JSONB NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (run_id)
)""",
    "CREATE INDEX run_views_created ON run_views (created_at, run_id)",
    "CREATE INDEX run_views_parent_created ON run_views (parent_run_id, created_at, run_id)",
    "CREATE INDEX run_views_status_created ON run_views (status, created_at, run_id)",
    "CREATE INDEX run_views_tenant_created ON run_views (tenant_id, created_at, run_id)",
    "CREATE INDEX run_views_workflow_created ON run_views (workflow_id, created_at, run_id)",
    """
CREATE TABLE run_tags (
    run_id VARCHAR(200) NOT NULL,
    tag VARCHAR(200) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (run_id, tag)
)""",
    "CREATE INDEX run_tags_tag_created ON run_tags (tag, created_at, run_id)",
    """
CREATE TABLE step_journal (
    run_id VARCHAR(200) NOT NULL,
    step_id VARCHAR(200) NOT NULL,
    status VARCHAR(30) NOT NULL,
    attempt INTEGER NOT NULL,
    result JSONB,
    error JSONB,
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,
    first_position BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_id)
)""",
    """
CREATE TABLE projection_checkpoints (
    name VARCHAR(100) NOT NULL,
    version INTEGER NOT NULL,
    position BIGINT NOT NULL,
    table_generation INTEGER NOT NULL,
    rebuild_owner VARCHAR(64),
    rebuild_until TIMESTAMP WITH TIME ZONE,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (name)
)""",
)

V1_SQLITE = (
    """
CREATE TABLE run_views (
    run_id VARCHAR(200) NOT NULL,
    workflow_id VARCHAR(200) NOT NULL,
    workflow_version VARCHAR(50) NOT NULL,
    status VARCHAR(20) NOT NULL,
    input TEXT,
    result TEXT,
    error TEXT,
    waitpoint TEXT,
    wake_at DATETIME,
    timeout_at DATETIME,
    parent_run_id VARCHAR(200),
    parent_step_id VARCHAR(200),
    children TEXT NOT NULL,
    tenant_id VARCHAR(200),
    tenant_meta TEXT NOT NULL,
    tags TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (run_id)
)""",
    "CREATE INDEX run_views_created ON run_views (created_at, run_id)",
    "CREATE INDEX run_views_parent_created ON run_views (parent_run_id, created_at, run_id)",
    "CREATE INDEX run_views_status_created ON run_views (status, created_at, run_id)",
    "CREATE INDEX run_views_tenant_created ON run_views (tenant_id, created_at, run_id)",
    "CREATE INDEX run_views_workflow_created ON run_views (workflow_id, created_at, run_id)",
    """
CREATE TABLE run_tags (
    run_id VARCHAR(200) NOT NULL,
    tag VARCHAR(200) NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (run_id, tag)
)""",
    "CREATE INDEX run_tags_tag_created ON run_tags (tag, created_at, run_id)",
    """
CREATE TABLE step_journal (
    run_id VARCHAR(200) NOT NULL,
    step_id VARCHAR(200) NOT NULL,
    status VARCHAR(30) NOT NULL,
    attempt INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    started_at DATETIME,
    completed_at DATETIME,
    first_position BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_id)
)""",
    """
CREATE TABLE projection_checkpoints (
    name VARCHAR(100) NOT NULL,
    version INTEGER NOT NULL,
    position BIGINT NOT NULL,
    table_generation INTEGER NOT NULL,
    rebuild_owner VARCHAR(64),
    rebuild_until DATETIME,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (name)
)""",
)

# ------------- 2: run lineage (resumed from, rerun of), compensation, queue, priority
#
# Rows projected before have NULL lineage and compensation and priority 0: the run
# views projection (version 2) fills them from history, so a store that has rows is
# marked as built by version 1 (its checkpoint row, inserted if missing) and is
# rebuilt by `ledgerflow projections rebuild` or at `serve`'s start (`rebuild_stale`).
# Not filled here in SQL: only the event store reads the events table.

V2_POSTGRESQL = (
    "ALTER TABLE run_views ADD COLUMN resumed_from VARCHAR(200)",
    "ALTER TABLE run_views ADD COLUMN rerun_of VARCHAR(200)",
    "ALTER TABLE run_views ADD COLUMN compensation VARCHAR(30)",
    "ALTER TABLE run_views ADD COLUMN queue VARCHAR(200)",
    "ALTER TABLE run_views ADD COLUMN priority INTEGER DEFAULT 0 NOT NULL",
    "CREATE INDEX run_views_compensation_created ON run_views "
    "(compensation, created_at, run_id)",
    "CREATE INDEX run_views_rerun_created ON run_views (rerun_of, created_at, run_id)",
    "CREATE INDEX run_views_resumed_created ON run_views (resumed_from, created_at, run_id)",
    """
INSERT INTO projection_checkpoints (name, version, position, table_generation, updated_at)
SELECT 'run_views', 1, 0, 1, now() WHERE EXISTS (SELECT 1 FROM run_views)
ON CONFLICT (name) DO NOTHING""",
)

V2_SQLITE = (
    *V2_POSTGRESQL[:-1],  # the same DDL text on both
    """
INSERT OR IGNORE INTO projection_checkpoints
    (name, version, position, table_generation, updated_at)
SELECT 'run_views', 1, 0, 1, CURRENT_TIMESTAMP WHERE EXISTS (SELECT 1 FROM run_views)""",
)

# ------------------- 3: run id prefixes (PostgreSQL only)
# `resolve_run_id` finds a run by a prefix of its id with `LIKE 'prefix%'`, which the
# primary key's index serves only under the "C" collation; this one serves it under
# any. SQLite needs none: its prefix match (GLOB) runs on the primary key's index.

V3_POSTGRESQL = (
    "CREATE INDEX run_views_id_prefix ON run_views (run_id varchar_pattern_ops)",
)

# ------------------- 4: finished runs per status, sharded (`projections._counts`)
# Filled here from the run views a store already has (a one-time scan at upgrade);
# the counts of the existing runs go to shard 0 (any shard sums the same).

V4_POSTGRESQL = (
    """
CREATE TABLE run_status_counts (
    status VARCHAR(20) NOT NULL,
    shard INTEGER NOT NULL,
    runs BIGINT NOT NULL,
    PRIMARY KEY (status, shard)
)""",
    """
INSERT INTO run_status_counts (status, shard, runs)
SELECT status, 0, count(*) FROM run_views
WHERE status IN ('completed', 'failed', 'canceled') GROUP BY status""",
)

V4_SQLITE = V4_POSTGRESQL  # the same text on both
