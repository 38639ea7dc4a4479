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
