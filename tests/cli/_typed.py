"""A workflow with a typed input, for the CLI tests (`--workflows tests.cli._typed`)."""

from __future__ import annotations

from pydantic import BaseModel

from ledgerflow import Context, workflow


class Payment(BaseModel):
    account: str
    cents: int


@workflow("pay", input=Payment)
def pay(ctx: Context, payment: Payment) -> dict[str, int]:
    """Charge an account."""
    return {"charged": payment.cents}
