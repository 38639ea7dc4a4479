"""A handler of a later dispatch protocol (2): refuses protocol 1 as such a handler
would (`uvicorn tests.remote.future_app:app`)."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def run(request: Request) -> JSONResponse:
    return JSONResponse({"protocol": 2, "error": "protocol",
                         "message": "this handler speaks dispatch protocol 2"}, 400)


async def workflows(request: Request) -> JSONResponse:
    return JSONResponse({"protocol": 2, "workflows": []})


app = Starlette(routes=[Route("/ledgerflow/run", run, methods=["POST"]),
                        Route("/ledgerflow/workflows", workflows)])
