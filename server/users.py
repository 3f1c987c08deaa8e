"""Who is on the other end of a request or socket.

Until accounts exist every connection is the single local writer; everything that needs a user
asks here, so accounts can plug in without touching the routes.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from storage.models import LOCAL_USER


def current_user(connection: HTTPConnection) -> str:
    return LOCAL_USER
