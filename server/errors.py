"""Errors clients can cause, and the JSON bodies they get: `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse

# close codes of both sockets, beyond the standard ones (docs/protocol.md)
WS_1013_TRY_AGAIN_LATER = 1013  # standard: the server cannot store now; reconnect and resend
WS_4401_UNAUTHENTICATED = 4401
WS_4403_FORBIDDEN = 4403
WS_4404_DOCUMENT_NOT_FOUND = 4404
WS_4408_IDLE = 4408
WS_4413_DOCUMENT_TOO_LARGE = 4413
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


class DatabaseUnavailable(Exception):
    """The database cannot be reached for now (503; a document socket closes with 1013)."""


# SQLAlchemy's errors for a database that is down or unreachable, as opposed to a bad query
DATABASE_DOWN = (OperationalError, InterfaceError, SqlTimeoutError, DatabaseUnavailable)
RETRY_AFTER_S = 5


def api_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def unavailable() -> JSONResponse:
    response = api_error(503, "unavailable", "the database is unavailable; try again shortly")
    response.headers["retry-after"] = str(RETRY_AFTER_S)
    return response


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
