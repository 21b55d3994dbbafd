"""Every route refuses what it must: no session, the wrong role, a form without its CSRF token.

Also: the session cookie's flags, the security headers, sign-in throttling, sign-out ending the
session, and that the health check and the sign-in page are the only routes open to anyone.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.console.conftest import PASSWORD, Console, csrf

# (method, path, the least role that may use it)
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/", "manager"),
    ("GET", "/campaigns/demo", "manager"),
    ("GET", "/campaigns/demo/live", "manager"),
    ("GET", "/campaigns/demo/preview", "manager"),
    ("GET", "/campaigns/demo/rejects.csv", "manager"),
    ("GET", "/campaigns/demo/report", "manager"),
    ("GET", "/campaigns/demo/report/outcomes.csv", "manager"),
    ("GET", "/reports/daily", "manager"),
    ("GET", "/reports/daily/2026-11-21.csv", "manager"),
    ("GET", "/campaigns/new", "operator"),
    ("POST", "/campaigns/new", "operator"),
    ("GET", "/campaigns/demo/edit", "operator"),
    ("POST", "/campaigns/demo/edit", "operator"),
    ("POST", "/campaigns/demo/launch", "operator"),
    ("POST", "/campaigns/demo/control", "operator"),
    ("GET", "/users", "admin"),
    ("POST", "/users", "admin"),
    ("POST", "/users/manager/disable", "admin"),
]
ROLES = ("manager", "operator", "admin")


def _call(client: TestClient, method: str, path: str, data: dict[str, str] | None = None) -> int:
    return client.request(method, path, data=data).status_code


def test_only_health_and_sign_in_are_open(console: Console) -> None:
    anonymous = console.client()
    assert anonymous.get("/healthz").json() == {"ok": True}
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/static/console.css").status_code == 200
    for method, path, _role in ROUTES:
        response = anonymous.request(method, path)
        if method == "GET":
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next="), path
        else:
            assert response.status_code in (401, 403), path  # no session: refused, nothing done


@pytest.mark.parametrize("role", ROLES)
def test_each_route_refuses_roles_below_it(console: Console, role: str) -> None:
    client = console.client(role)
    token = csrf(client.get("/").text)
    for method, path, needs in ROUTES:
        if ROLES.index(role) >= ROLES.index(needs):
            continue
        status = _call(client, method, path, {"csrf_token": token, "action": "pause", "reason": "x"})
        assert status == 403, (role, method, path)
    # And what the role may do, it may reach (a page, not a refusal).
    for method, path, needs in ROUTES:
        if method == "GET" and ROLES.index(role) >= ROLES.index(needs) and "rejects" not in path \
                and "report" not in path and "/live" not in path:
            assert client.get(path).status_code == 200, (role, path)


def test_every_form_needs_the_csrf_token(console: Console) -> None:
    admin = console.client("admin")
    for method, path, _role in ROUTES:
        if method != "POST":
            continue
        assert _call(admin, "POST", path, {"action": "pause", "reason": "x"}) == 403, path
        assert _call(admin, "POST", path, {"csrf_token": "forged", "action": "pause", "reason": "x"}) == 403
    # Signing out and in need it too.
    assert admin.post("/logout").status_code == 403
    assert console.client().post("/login", data={"name": "admin", "password": PASSWORD}).status_code == 403


def test_session_cookie_and_security_headers(make_console: object) -> None:
    console = make_console()  # type: ignore[operator]
    client = console.client()
    page = client.get("/login")
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text and " style=" not in page.text  # nothing inline for the CSP to allow
    secure = make_console(https=True).client()  # type: ignore[operator]
    assert "Secure" in secure.get("/login").headers["set-cookie"]


def test_sign_out_ends_the_session_even_for_a_copied_cookie(console: Console) -> None:
    client = console.client("operator")
    copied = dict(client.cookies)
    assert client.get("/").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf(client.get("/").text)}).status_code == 303
    thief = TestClient(console.app, follow_redirects=False, cookies=copied)
    assert thief.get("/").status_code == 303


def test_a_disabled_user_is_signed_out(console: Console) -> None:
    operator = console.client("operator")
    admin = console.client("admin")
    assert admin.post("/users/operator/disable", data={"csrf_token": csrf(admin.get("/users").text)}
                      ).status_code == 303
    assert operator.get("/").status_code == 303


def test_sign_in_is_throttled(make_console: object) -> None:
    console = make_console(login_attempts=3)  # type: ignore[operator]
    client = console.client()
    token = csrf(client.get("/login").text)
    for _ in range(3):
        assert client.post("/login", data={"name": "admin", "password": "wrong", "csrf_token": token}
                           ).status_code == 401
    refused = client.post("/login", data={"name": "admin", "password": PASSWORD, "csrf_token": token})
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text


def test_no_open_redirect_after_sign_in(console: Console) -> None:
    client = console.client()
    token = csrf(client.get("/login").text)
    response = client.post("/login", data={"name": "manager", "password": PASSWORD, "csrf_token": token,
                                           "next": "//evil.example.com/"})
    assert response.headers["location"] == "/"


def test_secrets_are_never_rendered(console: Console) -> None:
    secret = console.app.state.console.users.session_secret()
    admin = console.client("admin")
    for path in ("/", "/users", "/campaigns/demo/preview", "/campaigns/demo/edit", "/campaigns/new"):
        page = admin.get(path).text
        assert secret not in page, path
        assert not re.search(r"\$argon2", page), path


def test_preview_says_who_is_callable_now_and_what_the_limit_holds(console: Console) -> None:
    page = console.client("manager").get("/campaigns/demo/preview").text
    # The demo's window is 00:00-23:59 IST: all 301 are callable, but in the minute it is closed.
    assert re.search(r"<ul id=\"calling\"><li>callable now: (301|0)</li>", page), page[-2000:]
    assert "Contact limit (3 call(s) per number in 1 day(s)" in page and "held by the limit now: 0" in page
