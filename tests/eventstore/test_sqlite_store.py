"""The store contract on SQLite, the embedded default."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from tests.eventstore.contract import IdempotencyContract, StoreContract


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def engine(self, sqlite_engine: Engine) -> Engine:
        return sqlite_engine


class TestSqliteIdempotency(IdempotencyContract):
    @pytest.fixture
    def engine(self, sqlite_engine: Engine) -> Engine:
        return sqlite_engine
