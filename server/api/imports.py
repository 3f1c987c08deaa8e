"""Import: a .md, .txt or .docx file becomes a new document, its text entered through the live
document like any edit. A file that is refused, or an import that fails half way, leaves nothing
behind (docs/export.md).

The file is the raw request body and its name is the `name` query parameter: one file per request
needs no multipart parser, and the browser streams the `File` as it is (with upload progress).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.docx_reader import UnreadableDocx, docx_markdown
from server.auth.sessions import signed_in
from server.collab.room import DocumentTooLarge
from server.errors import api_error
from server.services import services
from storage import documents, library
from storage.models import TEXT_MAX, TITLE_MAX, DocumentCreate

IMPORT_MAX = 5 << 20  # bytes of one uploaded file; below the 8 MiB request limit
NAME_MAX = 255
EXTENSIONS = ("md", "markdown", "txt", "docx")
# control characters other than tab, newline and carriage return: a "text" file holding them is binary
BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
LEADING_HEADING = re.compile(r"\A\s*#{1,6}[ \t]+(.+?)[ \t#]*(?:\n|\Z)")


class ImportRefused(Exception):
    """A file that cannot be imported, with the status and message its uploader is told."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def file_extension(name: str) -> str:
    """The upload's lower-cased extension; ImportRefused unless it is one Cowrite imports."""
    if not name or len(name) > NAME_MAX or "/" in name or "\\" in name:
        raise ImportRefused(400, "invalid", f"give the file's name (up to {NAME_MAX} characters) as ?name=")
    extension = PurePosixPath(name).suffix.lower().lstrip(".")
    if extension not in EXTENSIONS:
        raise ImportRefused(
            415,
            "unsupported_type",
            "only Markdown (.md), plain text (.txt) and Word (.docx) files can be imported",
        )
    return extension


def file_text(extension: str, data: bytes) -> str:
    """The file's content as the document's Markdown; ImportRefused when the content does not match
    its extension, cannot be read, or is empty."""
    if not data:
        raise ImportRefused(400, "empty", "the file is empty")
    if extension == "docx":
        try:
            text = docx_markdown(data)
        except UnreadableDocx as exc:
            raise ImportRefused(422, "unreadable", str(exc)) from None
    else:
        if data[:4] == b"PK\x03\x04":
            raise ImportRefused(415, "unsupported_type", "the file is an archive (a .docx?), not text")
        try:
            text = data.decode("utf-8-sig")  # strict: a wrong encoding is refused, not guessed
        except UnicodeDecodeError:
            raise ImportRefused(
                422, "not_utf8", "the file is not UTF-8 text; save it as UTF-8 and try again"
            ) from None
        if BINARY.search(text):
            raise ImportRefused(415, "unsupported_type", "the file holds binary data, not text")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ImportRefused(400, "empty", "the file has no text")
    if len(text) > TEXT_MAX:
        raise ImportRefused(413, "too_large", f"the text is over {TEXT_MAX:,} characters")
    return text


def title_and_text(name: str, text: str) -> tuple[str, str]:
    """A leading heading becomes the title (and leaves the text, as export puts it back); otherwise
    the file's name without its extension."""
    heading = LEADING_HEADING.match(text)
    if heading and heading.group(1).strip():
        title, text = heading.group(1).strip(), text[heading.end() :].lstrip("\n")
    else:
        title = PurePosixPath(name).stem.strip() or "Imported"
    title = " ".join(BINARY.sub("", title).split())[:TITLE_MAX] or "Imported"
    return title, text


async def read_upload(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes IMPORT_MAX (before it is all read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > IMPORT_MAX:
        raise ImportRefused(413, "too_large", f"the file is over {IMPORT_MAX >> 20} MiB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > IMPORT_MAX:
            raise ImportRefused(413, "too_large", f"the file is over {IMPORT_MAX >> 20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


async def import_document(request: Request) -> Response:
    """A new document of the signed-in user's from the uploaded file (201 with the document)."""
    account = signed_in(request)
    name = request.query_params.get("name", "")
    try:
        extension = file_extension(name)
        data = await read_upload(request)
        # parsing a .docx (or decoding megabytes) is CPU work: off the event loop
        text = await anyio.to_thread.run_sync(file_text, extension, data)
    except ImportRefused as refused:
        return api_error(refused.status, refused.code, refused.message)
    title, text = title_and_text(name, text)
    found = services(request)
    created = await found.store.run(documents.create_document, DocumentCreate(title=title), account.username)
    try:
        await found.rooms.set_text(created.id, text)  # through the CRDT, like any edit
    except BaseException as failure:
        with anyio.CancelScope(shield=True):  # even when the request is cancelled: leave nothing
            await found.store.run(documents.delete_document, created.id, account.username)
            await found.store.run(library.delete_forever, created.id, account.username)
            await found.rooms.forget(created.id)
        if isinstance(failure, DocumentTooLarge):
            return api_error(413, "too_large", str(failure))
        raise
    document = await found.store.run(documents.get_document, created.id, account.username)
    return JSONResponse(document.model_dump(mode="json"), status_code=201)


routes = [Route("/api/documents/import", import_document, methods=["POST"])]
