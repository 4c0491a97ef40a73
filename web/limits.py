"""The request-body cap: ``SIGNDIGITS_MAX_UPLOAD_BYTES``, enforced while bytes arrive.

A declared ``Content-Length`` over the cap is refused before anything is read; a body
sent without one (chunked) is counted as it streams and refused once past the cap, so no
client can fill the disk with the spooled upload.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(ValueError):
    pass


class BodyCap:
    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the request is over the {self.limit:,}-byte cap (SIGNDIGITS_MAX_UPLOAD_BYTES)"
        declared = dict(scope["headers"]).get(b"content-length")
        try:
            too_big = declared is not None and int(declared) > self.limit
        except ValueError:
            too_big = False
        if too_big:
            await JSONResponse({"detail": message}, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            received = await receive()
            seen += len(received.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge(message)
            return received

        await self.app(scope, counted, send)
