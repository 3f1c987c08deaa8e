"""Errors clients can cause, and the JSON bodies they get: `{"error": {"code", "message"}}`; and
`read_body`, the one way a route reads its JSON body."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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


class InvalidBody(Exception):
    """The request body is not what the route takes (400 `invalid`, naming the first bad field)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DatabaseUnavailable(Exception):
    """The database cannot be reached for now (503; a document socket closes with 1013)."""


# SQLAlchemy's errors for a database that is down or unreachable, as opposed to a bad query
DATABASE_DOWN = (OperationalError, InterfaceError, SqlTimeoutError, DatabaseUnavailable)
RETRY_AFTER_S = 5
# the error type of `refusal`: its message is the whole answer, field name included
REFUSED = "cowrite_refused"

M = TypeVar("M", bound=BaseModel)


def api_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def unavailable() -> JSONResponse:
    response = api_error(503, "unavailable", "the database is unavailable; try again shortly")
    response.headers["retry-after"] = str(RETRY_AFTER_S)
    return response


def not_found(what: str = "document") -> JSONResponse:
    return api_error(404, "not_found", f"no such {what}")


async def invalid_body(request: Request, exc: Exception) -> Response:
    """The app's one answer to `InvalidBody`."""
    assert isinstance(exc, InvalidBody)
    return api_error(400, "invalid", exc.message)


def refusal(message: str) -> PydanticCustomError:
    """For a model's validator: an error answered as `message` itself (it names its field)."""
    return PydanticCustomError(REFUSED, "{message}", {"message": message})


async def read_body(request: Request, model: type[M]) -> M:
    """The JSON body as `model`; InvalidBody naming what is wrong otherwise (not JSON, nested too
    deeply, or not what `model` accepts). An empty body reads as `{}`."""
    raw = await request.body()
    try:
        data = json.loads(raw or b"{}")
    except RecursionError:  # nesting deeper than the parser goes
        raise InvalidBody("the body is nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidBody("the body must be JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidBody(_first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    """`field: what is wrong` for the first error (`body` when it is the whole body's), or a
    refusal's own words."""
    first = exc.errors()[0]
    if first["type"] == REFUSED:
        return first["msg"]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
