"""`python -m server.admin`: create accounts, reset passwords and list users from the shell.

It works on the database the server uses (the same COWRITE_* settings), running or not. Passwords
are read from the terminal without echo, or from standard input with --password-stdin.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence

import anyio

from server.auth.passwords import hash_password, validate_password, validate_username
from server.settings import Settings, SettingsError
from storage import accounts
from storage.accounts import UsernameTaken, UserNotFound
from storage.database import Store


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the passwords differ")
    return first


async def _run(args: argparse.Namespace, settings: Settings) -> str:
    async with Store(settings.database) as store:
        if args.command == "list-users":
            users = await store.run(accounts.list_users)
            return "\n".join(f"{u.username}{' (admin)' if u.is_admin else ''}" for u in users) or "no users"
        username = validate_username(args.username)
        password_hash = hash_password(validate_password(_password(args.password_stdin)))
        if args.command == "create-user":
            user = await store.run(accounts.create_user, username, password_hash, args.admin)
            return f"created {user.username}{' (admin)' if user.is_admin else ''}"
        await store.run(accounts.set_password_hash, username, password_hash)
        return f"changed the password of {username}; their sessions were signed out"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="make an account")
    create.add_argument("username")
    create.add_argument("--admin", action="store_true", help="make it an admin")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    reset = commands.add_parser("reset-password", help="set a new password and sign the user out")
    reset.add_argument("username")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    commands.add_parser("list-users", help="list the accounts")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = Settings.from_env(os.environ)
        print(anyio.run(_run, args, settings))
    except UsernameTaken as exc:
        print(f"cowrite admin: {exc} exists already", file=sys.stderr)
        return 1
    except (SettingsError, ValueError) as exc:
        print(f"cowrite admin: {exc}", file=sys.stderr)
        return 2
    except UserNotFound as exc:
        print(f"cowrite admin: no user named {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
