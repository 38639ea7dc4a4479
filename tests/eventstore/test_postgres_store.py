"""The store contract on PostgreSQL (psycopg 3)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from tests.eventstore.contract import IdempotencyContract, StoreContract


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def engine(self, pg_engine: Engine) -> Engine:
        return pg_engine


class TestPostgresIdempotency(IdempotencyContract):
    @pytest.fixture
    def engine(self, pg_engine: Engine) -> Engine:
        return pg_engine
