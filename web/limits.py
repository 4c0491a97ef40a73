"""What a request may hold: the body cap (``SIGNDIGITS_MAX_UPLOAD_BYTES``), its JSON, its ids.

A declared ``Content-Length`` over the cap is refused before anything is read; a body
sent without one (chunked) is counted as it streams and refused once past the cap, so no
client can fill the disk with the spooled upload.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The largest id a BIGINT column holds: a bigger one overflowed SQLite's binding (500).
MAX_ID = 2**63 - 1
ImageId = Annotated[int, Path(ge=0, le=MAX_ID, description="an image id")]


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body streams in past the cap.

    An HTTP exception (413), because FastAPI re-raises those from its own body parsing and
    turns anything else into "There was an error parsing the body" (a 400): as a plain
    exception, ``/api/predict``'s over-cap chunked upload got that 400.
    """

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


async def json_body(request: Request):
    """The request's JSON; 400 with one line for anything unparsable (413 past the cap).

    A document nested 100,000 deep raised ``RecursionError`` in the parser (a 500).
    """
    try:
        return await request.json()
    except (ValueError, RecursionError):
        raise HTTPException(400, "the body is not valid JSON") from None


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
