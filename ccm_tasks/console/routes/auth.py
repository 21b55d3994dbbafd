"""Signing in and out, and the health check (the only routes open without a session)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from starlette.responses import RedirectResponse, Response

from ccm_tasks.console.deps import (
    CSRF,
    MaybeUser,
    SignedIn,
    State,
    render,
    session,
)

router = APIRouter()
log = logging.getLogger("ccm.console")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path on this console (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/healthz")
def health() -> JSONResponse:
    """Liveness for load balancers and tests (says nothing about campaigns)."""
    return JSONResponse({"ok": True})


@router.get("/login")
def login_page(request: Request, user: MaybeUser, next: str = "/") -> Response:
    """The sign-in form (or straight on, when already signed in)."""
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"next": safe_next(next)})


@router.post("/login", dependencies=[CSRF])
def login(request: Request, state: State, name: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    """Check the name and password; throttled per name and per client address."""
    address = f"ip:{request.client.host if request.client else '?'}"
    name_key = f"name:{name.strip().casefold()}"
    wait = state.throttle.retry_after(name_key, address)
    if wait > 0:
        log.warning("sign-in refused for %r from %s: too many failed attempts", name, address)
        return render(request, "login.html", {
            "error": f"Too many failed sign-ins. Try again in {int(wait) + 1} seconds.",
            "next": safe_next(next), "name": name}, status_code=429)
    user = state.users.verify(name.strip(), password)
    if user is None:
        state.throttle.failed(name_key, address)
        log.info("failed sign-in for %r from %s", name, address)
        return render(request, "login.html", {"error": "That name and password do not match an active user.",
                                              "next": safe_next(next), "name": name}, status_code=401)
    state.throttle.succeeded(name_key)
    request.state.session = session(request).signed_in(user.id)
    log.info("%s signed in", user.name)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout", dependencies=[CSRF])
def logout(request: Request, user: SignedIn,
           state: State) -> Response:
    """Sign out: this session and every other session of the user end."""
    state.users.end_sessions(user.id)
    request.state.session = type(session(request)).fresh()
    return RedirectResponse("/login", status_code=303)
