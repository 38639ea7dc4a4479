"""A real `ledgerflow serve` process on the session PostgreSQL database, with API
tokens, shared by the client tests (`root` sees every tenant, `acme` its own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ledgerflow.client import Client
from tests.cli.conftest import cli_env
from tests.cli.test_serve import Served, start_serve

WORKFLOWS = "tests.api._workflows,tests.client._workflows"
TOKENS = "root-token=*,acme-token=acme"
STREAM_MAX_SECONDS = 2.0
"""Short, so that a stream read across a longer wait exercises the client's reconnect."""


@pytest.fixture(scope="package")
def served(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = cli_env(pg_url, tmp_path_factory.mktemp("serve"))
    env.update(LEDGERFLOW_WORKFLOWS=WORKFLOWS, LEDGERFLOW_API_TOKENS=TOKENS,
               LEDGERFLOW_STREAM_MAX_SECONDS=str(STREAM_MAX_SECONDS))
    yield from start_serve(env)


@pytest.fixture
def url(served: Served) -> str:
    return served.base_url


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    """A client of the served API with the token that sees every tenant."""
    with Client(url, token="root-token") as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
