"""The suggestion socket's messages (protocol version 1, see docs/protocol.md), validated by pydantic."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuggestSettings(Strict):
    max_tokens: int = Field(default=24, ge=1, le=128)
    # chosen by measurement (docs/benchmarks.md, "Default creativity"): it saved the most keystrokes
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    n: int = Field(default=1, ge=1, le=4)


class Suggest(Strict):
    v: Literal[1]
    type: Literal["suggest"]
    id: ClientId
    before: str = Field(max_length=50_000)
    after: str = Field(default="", max_length=5_000)
    settings: SuggestSettings = SuggestSettings()


class Prime(Strict):
    """Read the context ahead of time (when a document opens), so the first suggestion is quick."""

    v: Literal[1]
    type: Literal["prime"]
    before: str = Field(max_length=50_000)


class Cancel(Strict):
    v: Literal[1]
    type: Literal["cancel"]
    id: ClientId


class Feedback(Strict):
    v: Literal[1]
    type: Literal["feedback"]
    id: ClientId
    # typed: the writer typed the suggestion's start themselves and took nothing with a key
    outcome: Literal["accepted", "partial", "rejected", "typed"]
    accepted_chars: int = Field(default=0, ge=0, le=1_000_000)
    alternative: int = Field(default=0, ge=0, le=3)


ClientMessage = Suggest | Prime | Cancel | Feedback
MESSAGE_TYPES: dict[str, type[Suggest] | type[Prime] | type[Cancel] | type[Feedback]] = {
    "suggest": Suggest,
    "prime": Prime,
    "cancel": Cancel,
    "feedback": Feedback,
}


class ProtocolError(Exception):
    """A frame the server cannot act on; becomes an `error` frame, and the socket lives on."""

    def __init__(self, code: str, message: str, request_id: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.extra = extra

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "type": "error", "code": self.code, "message": self.message}
        if self.request_id is not None:
            out["id"] = self.request_id
        return {**out, **self.extra}


def parse(text: str) -> ClientMessage:
    """One client frame, or ProtocolError naming what is wrong."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_json", "the frame must be a JSON object")
    raw_id = data.get("id")
    request_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 64 else None
    if data.get("v") != VERSION:
        raise ProtocolError("unsupported_version", f"v must be {VERSION}", request_id)
    kind = data.get("type")
    model = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ProtocolError("unknown_type", f"type must be one of {', '.join(MESSAGE_TYPES)}", request_id)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProtocolError("bad_message", f"{where}: {first['msg']}", request_id) from None


def server_frame(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": VERSION, "type": kind, **fields}
