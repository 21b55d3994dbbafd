"""Users and roles (admins only): add, change role, disable, enable."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from ccm_tasks.console.deps import (
    CSRF,
    Admin,
    ConsoleState,
    State,
    render,
)
from ccm_tasks.ledger.users import MIN_PASSWORD_LENGTH, ROLES, User, UserError

router = APIRouter()
log = logging.getLogger("ccm.console")


def _page(request: Request, user: User, state: ConsoleState, *, error: str | None = None,
          notice: str | None = None, status_code: int = 200) -> Response:
    return render(request, "users.html", {"people": state.users.all(), "roles": ROLES, "error": error,
                                          "notice": notice, "min_password": MIN_PASSWORD_LENGTH},
                  status_code=status_code, user=user)


@router.get("/users")
def users_page(request: Request, user: Admin,
               state: State) -> Response:
    """Everyone who can sign in, and the form to add someone."""
    return _page(request, user, state)


@router.post("/users", dependencies=[CSRF])
def add_user(request: Request, user: Admin, state: State, name: Annotated[str, Form()] = "",
             role: Annotated[str, Form()] = "manager", password: Annotated[str, Form()] = "") -> Response:
    """Add a user."""
    try:
        added = state.users.add(name.strip(), role, password)
    except UserError as exc:
        return _page(request, user, state, error=str(exc), status_code=400)
    log.info("%s added user %s (%s)", user.name, added.name, added.role)
    return _page(request, user, state, notice=f"Added {added.name} as {added.role}.")


@router.post("/users/{name}/{action}", dependencies=[CSRF])
def change_user(request: Request, name: str, action: str, user: Admin, state: State,
                role: Annotated[str, Form()] = "") -> Response:
    """Disable, enable, or give a user another role."""
    if name == user.name and action in ("disable", "role"):
        return _page(request, user, state, error="You cannot disable yourself or change your own role.",
                     status_code=400)
    try:
        if action == "disable":
            state.users.disable(name)
        elif action == "enable":
            state.users.enable(name)
        elif action == "role":
            state.users.set_role(name, role)
        else:
            return RedirectResponse("/users", status_code=303)
    except UserError as exc:
        return _page(request, user, state, error=str(exc), status_code=400)
    log.info("%s: %s user %s %s", user.name, action, name, role)
    return RedirectResponse("/users", status_code=303)
