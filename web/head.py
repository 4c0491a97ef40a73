"""``HEAD`` answered as the ``GET`` it asks about: its status and headers, no body.

FastAPI's routes list only the methods they are declared with, so ``curl -I`` or an
uptime probe got 405 on every page and API route (Starlette's own routes, the static
files, add ``HEAD`` themselves). Declaring ``HEAD`` on each route would also put a second
operation per route into the OpenAPI document; this middleware keeps the document as it is.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            # The first body message ends the response: a stream (the job events) would
            # otherwise go on sending nothing until the job finished. Once it has ended,
            # the server reports the client gone, and the stream stops.
            nonlocal ended
            if ended:
                return
            if message["type"] == "http.response.body":
                ended = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # A copy: the server keeps its own scope, where the method is still HEAD.
        await self.app({**scope, "method": "GET"}, receive, headers_only)
