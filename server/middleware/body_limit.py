"""`BodyLimit`: a request body over the limit is refused with 413, whether it says its length or
streams it."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import RequestTooLarge, api_error


class BodyLimit:
    """413 for a request body over `limit` bytes, whether it says its length or streams it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self.too_large()(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise RequestTooLarge()
            return message

        await self.app(scope, counted, send)

    def too_large(self) -> ASGIApp:
        return api_error(413, "too_large", f"the request body is over {self.limit} bytes")
