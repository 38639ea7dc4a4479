"""The outbox's DDL as released, per migration and per dialect.

History, not the current model: taken from a database the code of its release
created, and never edited (a later schema is a new migration). Today's tables are
`outbox._schema`; a test proves a database migrated to head matches them.
"""

from __future__ import annotations

# --------------------------------------------- 1: outbox rows and consumer inbox

V1_POSTGRESQL = (
    """
CREATE TABLE outbox (
    id BIGSERIAL NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    topic VARCHAR(249) NOT NULL,
    key VARCHAR(200),
    payload TEXT NOT NULL,
    headers TEXT NOT NULL,
    status VARCHAR(10) NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP WITH TIME ZONE NOT NULL,
    first_attempt_at TIMESTAMP WITH TIME ZONE,
    last_attempt_at TIMESTAMP WITH TIME ZONE,
    last_error TEXT,
    error_class VARCHAR(200),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    published_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id),
    CONSTRAINT outbox_topic_event_id_key UNIQUE (topic, event_id)
)""",
    "CREATE INDEX outbox_pending_id ON outbox (id) WHERE status = 'pending'",
    "CREATE INDEX outbox_pending_key ON outbox (topic, key, id) WHERE status = 'pending'",
    "CREATE INDEX outbox_status_published_at ON outbox (status, published_at)",
    """
CREATE TABLE inbox (
    consumer VARCHAR(200) NOT NULL,
    idempotency_key VARCHAR(200) NOT NULL,
    topic VARCHAR(249),
    partition INTEGER,
    "offset" BIGINT,
    processed_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (consumer, idempotency_key)
)""",
)

V1_SQLITE = (
    """
CREATE TABLE outbox (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    event_id VARCHAR(36) NOT NULL,
    topic VARCHAR(249) NOT NULL,
    "key" VARCHAR(200),
    payload TEXT NOT NULL,
    headers TEXT NOT NULL,
    status VARCHAR(10) NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at DATETIME NOT NULL,
    first_attempt_at DATETIME,
    last_attempt_at DATETIME,
    last_error TEXT,
    error_class VARCHAR(200),
    created_at DATETIME NOT NULL,
    published_at DATETIME,
    CONSTRAINT outbox_topic_event_id_key UNIQUE (topic, event_id)
)""",
    "CREATE INDEX outbox_pending_id ON outbox (id) WHERE status = 'pending'",
    "CREATE INDEX outbox_pending_key ON outbox (topic, \"key\", id) WHERE status = 'pending'",
    "CREATE INDEX outbox_status_published_at ON outbox (status, published_at)",
    """
CREATE TABLE inbox (
    consumer VARCHAR(200) NOT NULL,
    idempotency_key VARCHAR(200) NOT NULL,
    topic VARCHAR(249),
    partition INTEGER,
    "offset" INTEGER,
    processed_at DATETIME NOT NULL,
    PRIMARY KEY (consumer, idempotency_key)
)""",
)
