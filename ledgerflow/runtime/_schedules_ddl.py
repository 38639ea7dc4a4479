"""The schedules' DDL as released (component "schedules"), per migration and dialect.

History, not the current model: never edited (a later schema is a new migration).
Today's table is `runtime.schedules.schedule_index`; a test proves a database
migrated to head matches it.
"""

from __future__ import annotations

# ------------------------------------------------------ 1: the schedules' index

V1_POSTGRESQL = (
    """
CREATE TABLE schedules (
    schedule_id VARCHAR(200) NOT NULL,
    workflow_id VARCHAR(200) NOT NULL,
    paused BOOLEAN NOT NULL,
    next_fire_at TIMESTAMP WITH TIME ZONE,
    buffered_at TIMESTAMP WITH TIME ZONE,
    last_run_id VARCHAR(200),
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (schedule_id)
)""",
    "CREATE INDEX schedules_next_fire ON schedules (next_fire_at)",
)

V1_SQLITE = (
    """
CREATE TABLE schedules (
    schedule_id VARCHAR(200) NOT NULL,
    workflow_id VARCHAR(200) NOT NULL,
    paused BOOLEAN NOT NULL,
    next_fire_at DATETIME,
    buffered_at DATETIME,
    last_run_id VARCHAR(200),
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (schedule_id)
)""",
    "CREATE INDEX schedules_next_fire ON schedules (next_fire_at)",
)
