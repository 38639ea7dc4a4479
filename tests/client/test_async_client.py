"""`ledgerflow.client.AsyncClient` against the real `serve`: the same calls, awaited."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ledgerflow.client import AsyncClient
from ledgerflow.client import _calls as calls
from ledgerflow.domain.errors import IllegalTransition, UnknownRun
from ledgerflow.domain.lifecycle import RunStatus


async def _scenario(url: str) -> None:
    async with AsyncClient(url, token="root-token") as client:
        tag = f"async-{uuid.uuid4().hex[:8]}"
        made = await client.request(calls.trigger("greet", "async", tags=[tag]))
        assert made.created
        done = await client.wait(made.value.run_id, poll=0.1)
        assert (done.status, done.result) == (RunStatus.COMPLETED, "hello async")
        assert [r.run_id async for r in client.list_runs(page_size=1, tag=tag)] == [
            done.run_id]
        assert [e.type for e in await client.history(done.run_id)][-1] == "RunCompleted"
        with pytest.raises(IllegalTransition):
            await client.cancel(done.run_id)
        with pytest.raises(UnknownRun):
            await client.get(f"missing-{tag}")
        run = (await client.trigger("streamer", {"words": ["a", "b"]})).run_id

        async def read() -> list[object]:
            return [e.chunk async for e in client.stream(run)]

        reading = asyncio.create_task(read())
        while (await client.get(run)).status is not RunStatus.SUSPENDED:
            await asyncio.sleep(0.1)
        await client.signal(run, "finish")
        assert await asyncio.wait_for(reading, timeout=60) == ["start", "a", "b", "done"]


def test_the_async_client_does_what_the_client_does(url: str) -> None:
    asyncio.run(_scenario(url))
