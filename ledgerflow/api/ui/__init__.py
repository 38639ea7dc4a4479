"""The web dashboard `serve` shows at `/ui` (`/` redirects there).

Server-rendered HTML (Jinja2 templates in this package) with one small script of our
own (`static/ui.js`: live refresh, confirmations); every asset ships in the wheel, so
nothing is fetched from the internet and nothing is built at install time. The pages
read and act through the JSON API's own functions (`projections.queries`, the route
functions of `ledgerflow.api._runs` / `_admin`) with the caller's `Principal`, so
they keep the API's tenancy and validation rules and hold no SQL of their own.

Interface: `mount(api)` adds the pages and `/ui/static` to an application made by
`create_app` (which calls it); the gate in front authenticates them (cookie or
bearer token; see `ledgerflow.api._gate`).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ledgerflow.api.ui import _actions, _admin, _pages, _queues, _schedules
from ledgerflow.api.ui._render import STATIC


def mount(api: FastAPI) -> None:
    """Add the dashboard's routes and static files to `api`."""
    api.include_router(_pages.router)
    api.include_router(_actions.router)
    api.include_router(_admin.router)
    api.include_router(_queues.router)
    api.include_router(_schedules.router)
    api.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")


__all__ = ["mount"]
