"""Console fixtures: a real ledger in tmp, real users, the demo campaign folder, signed-in clients."""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ccm_tasks.console import create_app
from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger.users import Users
from ccm_tasks.settings import ConsoleSettings

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    """A console app on a temporary CCM_HOME, with one user per role."""

    app: FastAPI
    ledger: Ledger
    home: Path

    def client(self, user: str | None = None) -> TestClient:
        """A client, signed in as ``user`` when given (users: manager, operator, admin)."""
        client = TestClient(self.app, follow_redirects=False)
        if user is not None:
            token = csrf(client.get("/login").text)
            response = client.post("/login", data={"name": user, "password": PASSWORD, "csrf_token": token})
            assert response.status_code == 303, response.text
        return client

    def stop_runs(self) -> None:
        """End the campaign runs this console started (by pid, their own session)."""
        for child in self.app.state.console.launcher.children():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                try:
                    child.wait(timeout=20)
                except Exception:
                    os.killpg(child.pid, signal.SIGKILL)


def csrf(page: str) -> str:
    """The CSRF token in a page's forms."""
    match = CSRF_RE.search(page)
    assert match, page[:500]
    return match.group(1)


@pytest.fixture
def make_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Console]]:
    """Build consoles on ``tmp_path`` (CCM_HOME) with the demo campaign and three users."""
    made: list[Console] = []

    def factory(**settings: object) -> Console:
        home = tmp_path / "home"
        if not home.exists():
            (home / "campaigns").mkdir(parents=True)
            shutil.copytree(REPO / "campaigns" / "demo", home / "campaigns" / "demo")
        monkeypatch.setenv("CCM_HOME", str(home))
        monkeypatch.delenv("CCM_LEDGER", raising=False)
        monkeypatch.delenv("CCM_REPORTS", raising=False)
        monkeypatch.delenv("PREFECT_API_URL", raising=False)
        for name in ("EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_ACCOUNT_SID", "EXOTEL_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("CCM_SIM_TIME_SCALE", "600")
        ledger = Ledger(home / "var" / "ledger.sqlite")
        users = Users(ledger)
        for role in ("manager", "operator", "admin"):
            if users.get(role) is None:
                users.add(role, role, PASSWORD)
        options: dict[str, object] = {"campaigns_dir": str(home / "campaigns"), "run_with_prefect": False,
                                      **settings}
        console = Console(create_app(ConsoleSettings(**options), ledger=ledger), ledger, home)  # type: ignore[arg-type]
        made.append(console)
        return console

    yield factory
    for console in made:
        console.stop_runs()
        console.ledger.close()


@pytest.fixture
def console(make_console: Callable[..., Console]) -> Console:
    """A console with default settings."""
    return make_console()
