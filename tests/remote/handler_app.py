"""A user's service mounting the test workflows' handler (`uvicorn
tests.remote.handler_app:app`, with `LEDGERFLOW_DISPATCH_SECRET` set)."""

from fastapi import FastAPI

import ledgerflow
from tests.remote.served import registry

app = FastAPI()
app.mount("/ledgerflow", ledgerflow.asgi_handler(registry))
