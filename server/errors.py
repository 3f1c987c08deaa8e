"""JSON error bodies for the document API: `{"error": {"code", "message"}}` with an exact status."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.responses import JSONResponse


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
    return api_error(400, "invalid", "the body must be a JSON object")
