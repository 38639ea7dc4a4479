"""The bundled example: a checkout saga, a variant that fails and compensates, and
the reminder child workflow both start.

    confirm -> charge -> durable sleep -> wait for signal "approval"
            -> invoice and email in parallel -> child "demo.send-reminder" -> fulfil

`confirm` and `charge` register compensators; in `demo.checkout-failing` the last
step (`fulfil`) fails, so the run refunds the charge, releases the booking, and fails.
The steps compute their results from their inputs: replaying them is deterministic.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ledgerflow import Context, workflow

CHECKOUT = "demo.checkout"
CHECKOUT_FAILING = "demo.checkout-failing"
REMINDER = "demo.send-reminder"


class WarehouseUnavailable(Exception):
    """The demo's fulfilment failure."""


def confirm_booking(booking_id: str) -> dict[str, Any]:
    return {"bookingId": booking_id, "confirmation": f"CNF-{booking_id}"}


def cancel_booking(booking: dict[str, Any]) -> dict[str, Any]:
    return {"released": booking["confirmation"]}


def charge_card(order: dict[str, Any]) -> dict[str, Any]:
    return {"chargeId": f"ch-{order['bookingId']}", "amount": order.get("amount", 0)}


def refund(charge: dict[str, Any]) -> dict[str, Any]:
    return {"refunded": charge["chargeId"], "amount": charge["amount"]}


def make_invoice(booking: dict[str, Any], charge: dict[str, Any]) -> dict[str, Any]:
    return {"invoice": f"INV-{booking['bookingId']}", "amount": charge["amount"]}


def send_email(booking: dict[str, Any], email: str) -> dict[str, Any]:
    return {"to": email, "subject": f"Booking {booking['confirmation']} confirmed"}


def fulfil(booking: dict[str, Any], fail: bool) -> dict[str, Any]:
    if fail:
        raise WarehouseUnavailable(f"no warehouse can ship booking {booking['bookingId']}")
    return {"shipped": booking["bookingId"]}


def _checkout(ctx: Context, order: dict[str, Any], *, fail_last: bool) -> dict[str, Any]:
    booking = ctx.step("confirm", confirm_booking, order["bookingId"],
                       compensate=cancel_booking)
    charge = ctx.step("charge", charge_card, order, max_attempts=3,
                      initial_delay=timedelta(milliseconds=200), compensate=refund)
    ctx.sleep("cool-off", timedelta(seconds=float(order.get("coolOffSeconds", 1))))
    approval = ctx.wait_for_signal("approval", timeout=timedelta(minutes=10))
    docs = ctx.parallel("docs", {
        "invoice": lambda: make_invoice(booking, charge),
        "email": lambda: send_email(booking, order.get("email", "guest@example.com")),
    })
    reminder = ctx.child("remind", REMINDER, {"bookingId": order["bookingId"]})
    shipped = ctx.step("fulfil", fulfil, booking, fail_last)
    return {"booking": booking["confirmation"], "approvedBy": approval, "docs": docs,
            "reminder": reminder, "shipped": shipped}


@workflow(CHECKOUT)
def checkout(ctx: Context, order: dict[str, Any]) -> dict[str, Any]:
    """The checkout saga."""
    return _checkout(ctx, order, fail_last=False)


@workflow(CHECKOUT_FAILING)
def checkout_failing(ctx: Context, order: dict[str, Any]) -> dict[str, Any]:
    """The same saga whose last step fails: compensators run in reverse, the run fails."""
    return _checkout(ctx, order, fail_last=True)


@workflow(REMINDER)
def send_reminder(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """The child: schedule a reminder for the booking."""
    at = ctx.now()
    reminder: dict[str, Any] = ctx.step(
        "schedule", lambda: {"bookingId": data["bookingId"],
                             "remindAt": (at + timedelta(days=1)).isoformat()})
    return reminder
