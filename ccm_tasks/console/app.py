"""The console's app factory: state, middleware (security headers, body limit, session cookie),
error pages, static files and the routes by concern."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import escape
from starlette.responses import RedirectResponse, Response

from ccm_tasks.console.definitions import NoSuchDefinition, Workspace
from ccm_tasks.console.deps import (
    TEMPLATES_DIR,
    ConsoleState,
    CsrfFailed,
    Forbidden,
    NotSignedIn,
    optional_user,
    render,
)
from ccm_tasks.console.launcher import Launcher
from ccm_tasks.console.security import (
    SESSION_COOKIE,
    BodyLimit,
    SecurityHeaders,
    Session,
    SessionCodec,
    SignInThrottle,
)
from ccm_tasks.inputs import DefinitionError
from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger.users import Users
from ccm_tasks.paths import ccm_home, resolve_ledger
from ccm_tasks.settings import ConsoleSettings

STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: ConsoleSettings | None = None, *, ledger: Ledger | None = None) -> FastAPI:
    """The console as an ASGI app (``ccm console`` serves it with uvicorn)."""
    from ccm_tasks.console.routes import auth, campaigns, reports, users

    settings = settings or ConsoleSettings()
    ledger = ledger or Ledger(resolve_ledger())
    people = Users(ledger)
    secret = settings.secret.get_secret_value() if settings.secret else people.session_secret()
    campaigns_dir = Path(settings.campaigns_dir) if settings.campaigns_dir else ccm_home() / "campaigns"
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.globals["time_format"] = _time_format
    state = ConsoleState(
        settings=settings, ledger=ledger, users=people,
        codec=SessionCodec(secret, settings.session_hours * 3600),
        throttle=SignInThrottle(settings.login_attempts, settings.login_window_seconds),
        workspace=Workspace(campaigns_dir.resolve(), Path(settings.template) if settings.template else None),
        launcher=Launcher(ledger, run_with_prefect=settings.run_with_prefect,
                          wait_seconds=settings.launch_wait_seconds),
        templates=templates)

    app = FastAPI(title="ccm console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = state
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    for router in (auth.router, campaigns.router, reports.router, users.router):
        app.include_router(router)

    @app.middleware("http")
    async def session_cookie(request: Request,
                             call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        loaded = state.codec.loads(request.cookies.get(SESSION_COOKIE))
        request.state.session = loaded or Session.fresh()
        response = await call_next(request)
        current: Session = request.state.session
        if current != loaded and not request.url.path.startswith("/static/"):
            secure = settings.https if settings.https is not None else request.url.scheme == "https"
            response.set_cookie(SESSION_COOKIE, state.codec.dumps(current), httponly=True, samesite="lax",
                                secure=secure, max_age=int(settings.session_hours * 3600), path="/")
        return response

    app.add_exception_handler(NotSignedIn, _not_signed_in)  # type: ignore[arg-type]
    app.add_exception_handler(Forbidden, _forbidden)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfFailed, _csrf_failed)  # type: ignore[arg-type]
    app.add_exception_handler(NoSuchDefinition, _not_found)  # type: ignore[arg-type]
    app.add_exception_handler(DefinitionError, _bad_definition)  # type: ignore[arg-type]
    limit = int(settings.max_upload_mb * 2**20)
    app.add_middleware(BodyLimit, limit=limit, page=_too_large_page(settings.max_upload_mb))
    app.add_middleware(SecurityHeaders)
    return app


def _time_format(ts: float | None, zone: str | None = None) -> str:
    if ts is None:
        return ""
    if zone:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        return datetime.fromtimestamp(ts, tz=ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
    if request.method == "GET" and "hx-request" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    response = render(request, "login.html", {"error": "Please sign in first.", "next": "/"},
                      status_code=401)
    if "hx-request" in request.headers:
        response.headers["HX-Redirect"] = "/login"
    return response


async def _forbidden(request: Request, exc: Forbidden) -> Response:
    return render(request, "refused.html", {
        "title": "Not allowed for your role",
        "message": f"You are signed in as {exc.user.name} ({exc.user.role}). This needs the "
                   f"{exc.needs} role; ask an admin if you should have it."}, status_code=403, user=exc.user)


async def _csrf_failed(request: Request, exc: CsrfFailed) -> Response:
    state: ConsoleState = request.app.state.console
    return render(request, "refused.html", {
        "title": "The form could not be accepted",
        "message": "The form was missing its security token, or it came from an old page or "
                   "another site. Nothing was changed. Go back, reload the page and try again."},
        status_code=403, user=optional_user(request, state))


async def _not_found(request: Request, exc: NoSuchDefinition) -> Response:
    state: ConsoleState = request.app.state.console
    return render(request, "refused.html", {"title": "Not found", "message": str(exc)}, status_code=404,
                  user=optional_user(request, state))


async def _bad_definition(request: Request, exc: DefinitionError) -> Response:
    state: ConsoleState = request.app.state.console
    return render(request, "refused.html", {"title": "The campaign definition has a problem",
                                            "message": str(exc)}, status_code=400,
                  user=optional_user(request, state))


def _too_large_page(limit_mb: float) -> bytes:
    text = (f"The upload is larger than the console accepts ({limit_mb:g} MB for all files of one "
            "form together). Nothing was stored. Split the list into smaller files, or ask the "
            "administrator to raise CCM_CONSOLE_MAX_UPLOAD_MB.")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Upload too large</title>'
            f'<link rel="stylesheet" href="/static/console.css"></head><body><main>'
            f'<h1>Upload too large</h1><p class="error" role="alert">{escape(text)}</p>'
            f'<p><a href="/campaigns/new">Back to the upload form</a></p></main></body></html>').encode()
