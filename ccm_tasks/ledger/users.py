"""The console's users, kept in the ledger so every console sharing it knows the same people.

A user has a name, a role and an argon2id password hash (argon2-cffi: the OWASP recommendation,
and a kept library rather than our own). Roles, from least to most: ``manager`` reads;
``operator`` also uploads, launches and controls campaigns; ``admin`` also manages users.

The console's session secret lives here too (``ledger_meta``), generated on first use, so a
restart or a second console on the same ledger does not sign everyone out.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Select, insert, select, update
from sqlalchemy.exc import IntegrityError

from ccm_tasks.ledger import schema as t
from ccm_tasks.ledger.ledger import Ledger

Role = Literal["manager", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
"""Every role, least to most: each can do everything the ones before it can."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")
MIN_PASSWORD_LENGTH = 10
_SECRET_KEY = "console_session_secret"  # noqa: S105 - the name of the ledger_meta row
_HASHER = PasswordHasher()  # argon2id, the library's current defaults
# Verified when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


class UserError(ValueError):
    """A user cannot be added or changed as asked; the message says why."""


@dataclass(frozen=True)
class User:
    """A console user (never carries the password hash)."""

    id: int
    name: str
    role: Role
    created_at: float
    disabled_at: float | None
    sessions_after: float
    last_sign_in_at: float | None

    @property
    def active(self) -> bool:
        """Whether the user may sign in."""
        return self.disabled_at is None

    def can(self, role: Role) -> bool:
        """Whether this user holds ``role`` or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role)


def check_role(role: str) -> Role:
    """``role`` as a :data:`Role`, or a :class:`UserError` listing the roles."""
    for known in ROLES:
        if role == known:
            return known
    raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")


class Users:
    """The users table of one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def add(self, name: str, role: str, password: str) -> User:
        """Add a user; refuses a taken name, a bad name or role, a short password."""
        if not _NAME_RE.match(name):
            raise UserError("a user name is 1-100 letters, digits, '_', '.', '@' or '-'")
        checked = check_role(role)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
        now = time.time()
        try:
            with self.ledger.write() as conn:
                conn.execute(insert(t.console_users).values(
                    name=name, role=checked, password_hash=_HASHER.hash(password), created_at=now,
                    sessions_after=0.0))
        except IntegrityError:
            raise UserError(f"there is already a user named {name!r}") from None
        user = self.get(name)
        assert user is not None
        return user

    def get(self, name: str) -> User | None:
        """The user of that name, if any."""
        with self.ledger.read() as conn:
            row = conn.execute(_by_name(name)).mappings().first()
        return _user(row) if row is not None else None

    def by_id(self, user_id: int) -> User | None:
        """The user with that id, if any."""
        with self.ledger.read() as conn:
            row = conn.execute(select(t.console_users).where(t.console_users.c.id == user_id)
                               ).mappings().first()
        return _user(row) if row is not None else None

    def all(self) -> list[User]:
        """Every user, by name."""
        with self.ledger.read() as conn:
            rows = conn.execute(select(t.console_users).order_by(t.console_users.c.name)).mappings().all()
        return [_user(r) for r in rows]

    def verify(self, name: str, password: str) -> User | None:
        """The active user whose name and password these are, else None (same cost either way)."""
        with self.ledger.read() as conn:
            row = conn.execute(_by_name(name)).mappings().first()
        stored = str(row["password_hash"]) if row is not None else _DUMMY_HASH
        try:
            _HASHER.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or row["disabled_at"] is not None:
            return None
        if _HASHER.check_needs_rehash(stored):
            self._set_hash(int(row["id"]), password)
        with self.ledger.write() as conn:
            conn.execute(update(t.console_users).where(t.console_users.c.id == row["id"])
                         .values(last_sign_in_at=time.time()))
        return self.by_id(int(row["id"]))

    def set_password(self, name: str, password: str) -> None:
        """Change a user's password; ends the user's sessions."""
        user = self._existing(name)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
        self._set_hash(user.id, password)
        self.end_sessions(user.id)

    def set_role(self, name: str, role: str) -> User:
        """Give a user another role."""
        user = self._existing(name)
        with self.ledger.write() as conn:
            conn.execute(update(t.console_users).where(t.console_users.c.id == user.id)
                         .values(role=check_role(role)))
        return self._existing(name)

    def disable(self, name: str) -> User:
        """Stop a user from signing in, and end the sessions already open."""
        user = self._existing(name)
        now = time.time()
        with self.ledger.write() as conn:
            conn.execute(update(t.console_users).where(t.console_users.c.id == user.id)
                         .values(disabled_at=now, sessions_after=now))
        return self._existing(name)

    def enable(self, name: str) -> User:
        """Let a disabled user sign in again."""
        user = self._existing(name)
        with self.ledger.write() as conn:
            conn.execute(update(t.console_users).where(t.console_users.c.id == user.id)
                         .values(disabled_at=None))
        return self._existing(name)

    def end_sessions(self, user_id: int, at: float | None = None) -> None:
        """Void every session of the user issued before ``at`` (default now): sign-out."""
        with self.ledger.write() as conn:
            conn.execute(update(t.console_users).where(t.console_users.c.id == user_id)
                         .values(sessions_after=time.time() if at is None else at))

    def session_secret(self) -> str:
        """The console's session-signing secret, generated and stored on first use."""
        with self.ledger.read() as conn:
            value = conn.execute(select(t.meta.c.value).where(t.meta.c.key == _SECRET_KEY)).scalar()
        if value is not None:
            return str(value)
        try:
            with self.ledger.write() as conn:
                conn.execute(insert(t.meta).values(key=_SECRET_KEY, value=secrets.token_urlsafe(48)))
        except IntegrityError:
            pass  # another console stored one first: use that
        with self.ledger.read() as conn:
            return str(conn.execute(select(t.meta.c.value).where(t.meta.c.key == _SECRET_KEY)).scalar_one())

    def _existing(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user named {name!r}")
        return user

    def _set_hash(self, user_id: int, password: str) -> None:
        with self.ledger.write() as conn:
            conn.execute(update(t.console_users).where(t.console_users.c.id == user_id)
                         .values(password_hash=_HASHER.hash(password)))


def _by_name(name: str) -> Select[Any]:
    """The user row of that name."""
    return select(t.console_users).where(t.console_users.c.name == name)


def _user(row: object) -> User:
    data = dict(row)  # type: ignore[call-overload]
    return User(id=int(data["id"]), name=str(data["name"]), role=check_role(str(data["role"])),
                created_at=float(data["created_at"]), disabled_at=data["disabled_at"],
                sessions_after=float(data["sessions_after"] or 0.0),
                last_sign_in_at=data["last_sign_in_at"])
