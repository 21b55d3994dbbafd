"""FastAPI dependencies, one per concern: the console's state, the session, the signed-in user,
the role a route needs, and the CSRF check of every form.

Refusals are exceptions the app turns into pages (:mod:`ccm_tasks.console.app`): not signed in ->
the sign-in page (303 for a page, 401 for a form or an htmx request); wrong role -> 403 saying
which role it needs; a form without its token -> 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from ccm_tasks.console.definitions import Workspace
from ccm_tasks.console.launcher import Launcher
from ccm_tasks.console.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    Session,
    SessionCodec,
    SignInThrottle,
    tokens_match,
)
from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger.users import Role, User, Users
from ccm_tasks.settings import ConsoleSettings

TEMPLATES_DIR = Path(__file__).parent / "templates"


class NotSignedIn(Exception):
    """The request needs a signed-in user."""


class Forbidden(Exception):
    """The user's role does not allow this."""

    def __init__(self, user: User, needs: Role) -> None:
        super().__init__(f"{user.name} is a {user.role}; this needs the {needs} role")
        self.user = user
        self.needs = needs


class CsrfFailed(Exception):
    """A form came without this session's CSRF token."""


@dataclass
class ConsoleState:
    """Everything the console's routes share (created once by the app factory)."""

    settings: ConsoleSettings
    ledger: Ledger
    users: Users
    codec: SessionCodec
    throttle: SignInThrottle
    workspace: Workspace
    launcher: Launcher
    templates: Jinja2Templates


def console_state(request: Request) -> ConsoleState:
    """The app's :class:`ConsoleState`."""
    state: ConsoleState = request.app.state.console
    return state


def session(request: Request) -> Session:
    """This request's session (the session middleware always sets one)."""
    current: Session = request.state.session
    return current


def optional_user(request: Request, state: Annotated[ConsoleState, Depends(console_state)]) -> User | None:
    """The signed-in user, or None: a session whose user is gone, disabled or signed out is none."""
    current = session(request)
    if current.user_id is None:
        return None
    user = state.users.by_id(current.user_id)
    if user is None or not user.active or (current.signed_in_at or 0.0) < user.sessions_after:
        return None
    return user


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    """The signed-in user; refuses the request otherwise."""
    if user is None:
        raise NotSignedIn
    return user


def require(role: Role) -> Callable[..., User]:
    """A dependency that lets through users holding ``role`` (or a higher one)."""

    def dependency(user: Annotated[User, Depends(current_user)]) -> User:
        if not user.can(role):
            raise Forbidden(user, role)
        return user

    dependency.__name__ = f"require_{role}"
    return dependency


async def check_csrf(request: Request) -> None:
    """Refuse a form (any non-GET request) that does not carry this session's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not tokens_match(session(request).csrf, given):
        raise CsrfFailed


State = Annotated[ConsoleState, Depends(console_state)]
"""The console's state, as a route parameter."""
MaybeUser = Annotated[User | None, Depends(optional_user)]
"""The signed-in user or None."""
SignedIn = Annotated[User, Depends(current_user)]
"""Any signed-in user."""
Manager = Annotated[User, Depends(require("manager"))]
"""A user who may read (managers and above)."""
Operator = Annotated[User, Depends(require("operator"))]
"""A user who may upload, launch and control (operators and admins)."""
Admin = Annotated[User, Depends(require("admin"))]
"""A user who may manage users."""
CSRF = Depends(check_csrf)
"""Put in a POST route's ``dependencies``: the form must carry the session's token."""


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200, user: User | None = None) -> Response:
    """A page from ``templates/``, with the session's CSRF token and the user in its context."""
    state = console_state(request)
    values: dict[str, Any] = {"csrf_token": session(request).csrf, "user": user,
                              "csrf_field": CSRF_FIELD, **(context or {})}
    return state.templates.TemplateResponse(request, template, values, status_code=status_code)
