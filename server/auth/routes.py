"""Sign-up, sign-in, sign-out and password changes (`/api/auth/...`). Signing in always issues a new
session id (and ends the browser's previous one); ending a session closes its sockets on every
replica."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.auth.cookies import COOKIE, session_hash
from server.auth.passwords import DUMMY_HASH, Credentials, NewAccount, PasswordChange, hashed, verified
from server.auth.sessions import Account, client_address, signed_in
from server.errors import api_error, read_body
from server.services import services
from storage import accounts
from storage.accounts import UsernameTaken
from storage.models import utcnow

audit = logging.getLogger("cowrite.audit")


async def status(request: Request) -> Response:
    """Public: who is signed in, whether sign-up is open, whether any account exists yet."""
    user = request.scope.get("user")
    count = await services(request).store.run(accounts.count_users)
    return JSONResponse(
        {
            "user": user.public() if isinstance(user, Account) else None,
            "signup": "open" if services(request).settings.signup == "open" or count == 0 else "closed",
            "first_run": count == 0,
        }
    )


async def signup(request: Request) -> Response:
    data = await read_body(request, NewAccount)
    store = services(request).store
    if services(request).settings.signup != "open" and await store.run(accounts.count_users) > 0:
        return api_error(403, "signup_closed", "sign-up is closed here; ask an admin for an account")
    limiter = services(request).signup_limiter
    address = client_address(request)
    key = f"address:{address}"
    reserved = await limiter.reserve(key)  # before the hash, so simultaneous sign-ups count each other
    if reserved is None:
        services(request).metrics.refused("signup")
        audit.warning("signup refused (rate limited) address=%s", address)
        return rate_limited(await limiter.retry_after(key), "too many new accounts from this address")
    try:
        if await store.run(accounts.get_user, data.username) is not None:
            raise UsernameTaken(data.username)  # known before spending a hash on it
        user = await store.run(accounts.create_user, data.username, await hashed(request, data.password))
    except UsernameTaken:
        await limiter.release(reserved, key)  # no account was made
        return api_error(409, "username_taken", "that username is taken")
    audit.info("signup user=%s address=%s admin=%s", user.username, address, user.is_admin)
    response = JSONResponse({"user": user.model_dump()}, status_code=201)
    await _start_session(request, response, user.username)
    return response


async def signin(request: Request) -> Response:
    data = await read_body(request, Credentials)
    limiter = services(request).signin_limiter
    address = client_address(request)
    keys = (f"account:{data.username}", f"address:{address}")
    # counted as a failure before the hash: simultaneous guesses cannot all pass one check
    reserved = await limiter.reserve(*keys)
    if reserved is None:
        services(request).metrics.refused("signin")
        audit.warning("signin refused (rate limited) user=%s address=%s", data.username, address)
        return rate_limited(await limiter.retry_after(*keys))
    user = await services(request).store.run(accounts.get_user, data.username)
    ok = await verified(request, user.password_hash if user else DUMMY_HASH, data.password)
    services(request).metrics.signin(ok and user is not None)
    if not ok or user is None:  # an unknown user was verified against the dummy hash
        audit.warning("signin failed user=%s address=%s", data.username, address)
        return api_error(401, "bad_credentials", "wrong username or password")
    await limiter.forget(keys[0])
    await limiter.release(reserved, keys[1])  # not a failure after all
    audit.info("signin user=%s address=%s", user.username, address)
    response = JSONResponse({"user": {"username": user.username, "is_admin": user.is_admin}})
    await _start_session(request, response, user.username)
    return response


async def change_password(request: Request) -> Response:
    """The signed-in user changes their own password: every other session of theirs ends, and this
    browser gets a new one. The current password is checked under the sign-in limits."""
    account = signed_in(request)
    data = await read_body(request, PasswordChange)
    limiter = services(request).signin_limiter
    address = client_address(request)
    keys = (f"account:{account.username}", f"address:{address}")
    reserved = await limiter.reserve(*keys)  # as for sign-in: counted before the hash
    if reserved is None:
        services(request).metrics.refused("signin")  # the same attempts, the same limit
        return rate_limited(await limiter.retry_after(*keys))
    store = services(request).store
    user = await store.run(accounts.get_user, account.username)
    if user is None or not await verified(request, user.password_hash, data.current_password):
        audit.warning("password change refused user=%s address=%s", account.username, address)
        return api_error(403, "bad_credentials", "the current password is wrong")
    await limiter.release(reserved, *keys)
    await store.run(accounts.set_password_hash, account.username, await hashed(request, data.new_password))
    await services(request).sockets.end_sessions_of(account.username)  # every session of the account ended
    audit.info("password changed user=%s address=%s", account.username, address)
    response = Response(status_code=204)
    await _start_session(request, response, account.username)
    return response


async def signout(request: Request) -> Response:
    user = request.scope.get("user")
    response = Response(status_code=204)
    if isinstance(user, Account):
        await services(request).store.run(accounts.end_session, user.session_hash)
        await services(request).sockets.end_session(user.session_hash)
        audit.info("signout user=%s", user.username)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


def rate_limited(wait: int, what: str = "too many sign-in attempts") -> JSONResponse:
    wait = max(1, wait)
    message = f"{what}; try again in {wait} s"
    body = {"error": {"code": "rate_limited", "message": message, "retry_after_s": wait}}
    return JSONResponse(body, status_code=429, headers={"retry-after": str(wait)})


async def _start_session(request: Request, response: Response, username: str) -> None:
    """A fresh session id for this browser, as a signed HttpOnly cookie; the old id stops working."""
    settings = services(request).settings
    session_id = secrets.token_urlsafe(32)
    previous = request.scope.get("user")
    lifetime = timedelta(days=settings.session_days)
    await services(request).store.run(
        accounts.start_session,
        session_hash(session_id),
        username,
        utcnow() + lifetime,
        client_address(request),
        previous.session_hash if isinstance(previous, Account) else None,
    )
    if isinstance(previous, Account):
        # the browser's previous session ended
        await services(request).sockets.end_session(previous.session_hash)
    signer = services(request).signer
    response.set_cookie(
        COOKIE,
        signer.sign(session_id),
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


routes = [
    Route("/api/auth/status", status, methods=["GET"]),
    Route("/api/auth/signup", signup, methods=["POST"]),
    Route("/api/auth/signin", signin, methods=["POST"]),
    Route("/api/auth/signout", signout, methods=["POST"]),
    Route("/api/auth/password", change_password, methods=["POST"]),
]
