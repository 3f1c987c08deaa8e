"""Passwords: argon2 hashing off the event loop (a few at a time), and the rules for usernames and
passwords that sign-up, sign-in and the admin command share."""

from __future__ import annotations

import re
import secrets

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request

from server.services import services

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
USERNAME_RULE = "2 to 32 characters: lowercase letters, digits, '_', '.', '-'; first a letter or digit"
PASSWORD_MIN, PASSWORD_MAX = 8, 1024  # the upper bound keeps hashing cheap to refuse
PASSWORD_WORKERS = 2  # argon2 hashes at once (each 64 MiB); more wait their turn

hasher = PasswordHasher()
# verified against when the username is unknown, so that answer takes as long as a wrong password
DUMMY_HASH = hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def hashed(request: Request, password: str) -> str:
    """`hash_password` on a worker thread: argon2 takes a fifth of a second of CPU and 64 MiB,
    which on the event loop would stall every socket. At most `PASSWORD_WORKERS` run at once."""
    limiter = services(request).password_limiter
    return await anyio.to_thread.run_sync(hash_password, password, limiter=limiter)


async def verified(request: Request, password_hash: str, password: str) -> bool:
    """`verify_password` on a worker thread, like `hashed`."""
    limiter = services(request).password_limiter
    return await anyio.to_thread.run_sync(verify_password, password_hash, password, limiter=limiter)


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=64)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)

    @field_validator("username")
    @classmethod
    def normal_username(cls, value: str) -> str:
        return value.strip().lower()


class NewAccount(Credentials):
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)

    @field_validator("username")
    @classmethod
    def valid_username(cls, value: str) -> str:
        value = value.strip().lower()
        if not USERNAME.match(value):
            raise ValueError(USERNAME_RULE)
        return value


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    new_password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)


def validate_username(username: str) -> str:
    """The normal form of a username, or ValueError saying what is allowed (the admin command)."""
    try:
        return NewAccount(username=username, password="x" * PASSWORD_MIN).username
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def validate_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValueError(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    return password
