"""The session cookie: a random session id and its HMAC under the server's secret key (made once in
the data folder). The database keeps only the id's SHA-256 (`session_hash`), so neither a stolen
database nor a forged cookie signs anyone in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from server.settings import Settings

COOKIE = "cowrite_session"
SECRET_FILE = "secret_key"


def load_secret_key(settings: Settings) -> bytes:
    """The key that signs cookies: the setting if given, else a file in the data folder, made
    (readable by its owner only) on first run."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class CookieSigner:
    key: bytes

    def sign(self, session_id: str) -> str:
        return f"{session_id}.{self._mac(session_id)}"

    def unsign(self, value: str) -> str | None:
        """The session id, if the value carries this server's signature."""
        session_id, _, mac = value.rpartition(".")
        if not session_id or not hmac.compare_digest(mac, self._mac(session_id)):
            return None
        return session_id

    def _mac(self, session_id: str) -> str:
        digest = hmac.new(self.key, session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
