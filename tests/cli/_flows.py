"""Flows the CLI tests import with `--workflows tests.cli._flows` (next to the
code-first ones of `tests.api._workflows`)."""

from __future__ import annotations

from datetime import timedelta

from ledgerflow import flow

PICKUP = flow("pickup").step("notify", lambda f: "ready")

ORDER = (flow("order", version="1")
         .step("reserve", lambda f: "R-1")
         .route("ship", lambda f: "pickup", {"pickup": PICKUP,
                                             "post": flow("post").step("label", lambda f: 1)})
         .sleep("cool-off", timedelta(minutes=5))
         .register())

flow("order", version="2").step("reserve", lambda f: "R-2").register()
