"""The engine's DDL as released (component "engine"), per migration and per dialect.

History, not the current model: taken from a database the code of its release
created, and never edited (a later schema is a new migration). Today's table is
`runtime.queue.run_queue`; a test proves a database migrated to head matches it.
"""

from __future__ import annotations

# ---------------------------------------- 1: run queue and trigger idempotency keys

V1_POSTGRESQL = (
    """
CREATE TABLE run_queue (
    run_id VARCHAR(200) NOT NULL,
    workflow_id VARCHAR(200) NOT NULL,
    priority INTEGER NOT NULL,
    due_at TIMESTAMP WITH TIME ZONE,
    lease_owner VARCHAR(200),
    lease_expires_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (run_id)
)""",
    "CREATE INDEX run_queue_due ON run_queue (due_at)",
    """
CREATE TABLE run_keys (
    key VARCHAR(255) NOT NULL,
    run_id VARCHAR(200) NOT NULL,
    fingerprint VARCHAR(128) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (key)
)""",
)

V1_SQLITE = (
    """
CREATE TABLE run_queue (
    run_id VARCHAR(200) NOT NULL,
    workflow_id VARCHAR(200) NOT NULL,
    priority INTEGER NOT NULL,
    due_at DATETIME,
    lease_owner VARCHAR(200),
    lease_expires_at DATETIME,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (run_id)
)""",
    "CREATE INDEX run_queue_due ON run_queue (due_at)",
    """
CREATE TABLE run_keys (
    "key" VARCHAR(255) NOT NULL,
    run_id VARCHAR(200) NOT NULL,
    fingerprint VARCHAR(128) NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY ("key")
)""",
)

# ------------- 2: trigger keys move to idempotency_keys (scope "trigger"); run_keys goes
#
# One idempotency mechanism: a trigger's key is an `idempotency_keys` row of scope
# "trigger", completed, whose result is {"runId": ...}, kept forever (expires_at is
# `eventstore.idempotency.FOREVER`, the last day of year 9999), as run_keys kept it.

V2_POSTGRESQL = (
    """
INSERT INTO idempotency_keys (scope, key, fingerprint, status, result, locked_until,
                              expires_at, created_at)
SELECT 'trigger', key, fingerprint, 'completed', jsonb_build_object('runId', run_id), NULL,
       TIMESTAMP WITH TIME ZONE '9999-12-31 00:00:00+00', created_at
FROM run_keys
ON CONFLICT (scope, key) DO NOTHING""",
    "DROP TABLE run_keys",
)

V2_SQLITE = (
    """
INSERT INTO idempotency_keys (scope, "key", fingerprint, status, result, locked_until,
                              expires_at, created_at)
SELECT 'trigger', "key", fingerprint, 'completed', json_object('runId', run_id), NULL,
       '9999-12-31 00:00:00.000000', created_at
FROM run_keys
WHERE true
ON CONFLICT (scope, "key") DO NOTHING""",
    "DROP TABLE run_keys",
)

# ------------------------------------------------------- 3: named queues and their limits
#
# `run_queue` gains the run's queue, concurrency key, fairness turn (its rank among the
# runs of its key: `runtime.limits`), the slots its lease holds (1: the queue's, 2: its
# key's, 3: both) and its debounce key. `queue_limits` holds each queue's limits as
# its stream says (a projection of `queue:<name>`) and the count of runs holding its
# slot; `queue_keys` the count per concurrency key; `queue_rate_slots` one row per start
# a rate limit allows per period (free again at `free_at`, unix seconds).

V3_POSTGRESQL = (
    "ALTER TABLE run_queue ADD COLUMN queue VARCHAR(200) DEFAULT 'default' NOT NULL",
    "ALTER TABLE run_queue ADD COLUMN concurrency_key VARCHAR(200)",
    "ALTER TABLE run_queue ADD COLUMN turn BIGINT DEFAULT 0 NOT NULL",
    "ALTER TABLE run_queue ADD COLUMN holds SMALLINT DEFAULT 0 NOT NULL",
    "ALTER TABLE run_queue ADD COLUMN debounce_key VARCHAR(500)",
    "CREATE INDEX run_queue_pick ON run_queue (priority DESC, turn, due_at)"
    " WHERE due_at IS NOT NULL",
    "CREATE INDEX run_queue_key ON run_queue (queue, concurrency_key, turn)",
    "CREATE UNIQUE INDEX run_queue_debounce ON run_queue (debounce_key)",
    """
CREATE TABLE queue_limits (
    name VARCHAR(200) NOT NULL,
    concurrency INTEGER,
    per_key_concurrency INTEGER,
    rate_limit INTEGER,
    rate_period_seconds DOUBLE PRECISION,
    paused BOOLEAN NOT NULL,
    executing INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name)
)""",
    "INSERT INTO queue_limits (name, paused, executing, version)"
    " VALUES ('default', false, 0, 0)",
    """
CREATE TABLE queue_keys (
    queue VARCHAR(200) NOT NULL,
    key VARCHAR(200) NOT NULL,
    executing INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
)""",
    """
CREATE TABLE queue_rate_slots (
    queue VARCHAR(200) NOT NULL,
    slot INTEGER NOT NULL,
    free_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (queue, slot)
)""",
)

V3_SQLITE = (
    "ALTER TABLE run_queue ADD COLUMN queue VARCHAR(200) DEFAULT 'default' NOT NULL",
    "ALTER TABLE run_queue ADD COLUMN concurrency_key VARCHAR(200)",
    "ALTER TABLE run_queue ADD COLUMN turn BIGINT DEFAULT 0 NOT NULL",
    "ALTER TABLE run_queue ADD COLUMN holds SMALLINT DEFAULT 0 NOT NULL",
    "ALTER TABLE run_queue ADD COLUMN debounce_key VARCHAR(500)",
    "CREATE INDEX run_queue_pick ON run_queue (priority DESC, turn, due_at)"
    " WHERE due_at IS NOT NULL",
    "CREATE INDEX run_queue_key ON run_queue (queue, concurrency_key, turn)",
    "CREATE UNIQUE INDEX run_queue_debounce ON run_queue (debounce_key)",
    """
CREATE TABLE queue_limits (
    name VARCHAR(200) NOT NULL,
    concurrency INTEGER,
    per_key_concurrency INTEGER,
    rate_limit INTEGER,
    rate_period_seconds FLOAT,
    paused BOOLEAN NOT NULL,
    executing INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name)
)""",
    "INSERT INTO queue_limits (name, paused, executing, version) VALUES ('default', 0, 0, 0)",
    """
CREATE TABLE queue_keys (
    queue VARCHAR(200) NOT NULL,
    "key" VARCHAR(200) NOT NULL,
    executing INTEGER NOT NULL,
    PRIMARY KEY (queue, "key")
)""",
    """
CREATE TABLE queue_rate_slots (
    queue VARCHAR(200) NOT NULL,
    slot INTEGER NOT NULL,
    free_at FLOAT NOT NULL,
    PRIMARY KEY (queue, slot)
)""",
)

# --------------------------------- 4: the debounce index holds only debounced runs
#
# Most runs have no debounce key: a full unique index on `debounce_key` made every
# enqueue (and every update that moves a row) write an entry for a NULL nobody looks
# up. The partial index serves the same lookups (`debounce_key = ...`) and the same
# uniqueness.

V4 = (
    "DROP INDEX run_queue_debounce",
    "CREATE UNIQUE INDEX run_queue_debounce ON run_queue (debounce_key)"
    " WHERE debounce_key IS NOT NULL",
)
V4_POSTGRESQL = V4
V4_SQLITE = V4
