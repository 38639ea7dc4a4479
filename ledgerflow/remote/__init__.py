"""Workflows served from the user's own service: the worker dispatches a run of a
workflow mapped to a URL (`LEDGERFLOW_DISPATCH`) over HTTP to `asgi_handler`, which
replays and executes it there and answers the journal records and what the run does
next; the worker appends them as an inline run would (`dispatch`). `protocol` holds
the wire models, `signing` the HMAC signature both sides check."""

from ledgerflow.remote.dispatch import RemoteRuns, RemoteSession
from ledgerflow.remote.endpoint import DispatchUnavailable, ProtocolMismatch, parse_table
from ledgerflow.remote.handler import asgi_handler
from ledgerflow.remote.protocol import PROTOCOL, DispatchRequest, DispatchResponse

__all__ = ["PROTOCOL", "DispatchRequest", "DispatchResponse", "DispatchUnavailable",
           "ProtocolMismatch", "RemoteRuns", "RemoteSession", "asgi_handler", "parse_table"]
