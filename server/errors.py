"""Errors clients can cause, and the JSON bodies they get: `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

# close codes of both sockets, beyond the standard ones (docs/protocol.md)
WS_4401_UNAUTHENTICATED = 4401
WS_4403_FORBIDDEN = 4403
WS_4404_DOCUMENT_NOT_FOUND = 4404
WS_4408_IDLE = 4408
WS_4429_TOO_MANY_SOCKETS = 4429


class Unauthenticated(Exception):
    """Nobody is signed in on this request or socket."""


class Forbidden(Exception):
    """Signed in and a member, but the role does not allow this."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestTooLarge(Exception):
    """The request body is larger than the limit."""


def api_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def not_found(what: str = "document") -> JSONResponse:
    return api_error(404, "not_found", f"no such {what}")


def invalid(exc: ValidationError | ValueError) -> JSONResponse:
    """400 naming the first offending field."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return api_error(400, "invalid", f"{where}: {first['msg']}")
    return api_error(400, "invalid", str(exc) or "the body must be a JSON object")


async def read_json(request: Request) -> Any:
    """The body as JSON; ValueError (400) for anything else. An empty body reads as `{}`."""
    raw = await request.body()
    try:
        return json.loads(raw or b"{}")
    except RecursionError:  # nesting deeper than the parser goes
        raise ValueError("the body is nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("the body must be JSON") from None
