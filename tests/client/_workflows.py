"""Workflows the client tests' `serve` imports (with `tests.api._workflows`)."""

from __future__ import annotations

from typing import Any

from ledgerflow import Context, current_step, workflow


@workflow("streamer")
def streamer(ctx: Context, data: Any) -> str:
    """Streams a start, a token per word from a step, then, once signaled, a done."""
    ctx.stream("progress", "start")

    def generate() -> str:
        for word in data["words"]:
            current_step().stream("tokens", word)
        return "".join(data["words"])

    text: str = ctx.step("generate", generate)
    ctx.wait_for_signal("finish")
    ctx.stream("progress", "done")
    return text


@workflow("charge", rerun_safety="unsafe")
def charge(ctx: Context, data: Any) -> Any:
    """Charges a card: running it again charges again."""
    return ctx.step("charge", lambda: {"charged": data})
