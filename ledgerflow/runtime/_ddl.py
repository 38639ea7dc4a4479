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
