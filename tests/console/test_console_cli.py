"""`ccm users` and `ccm console` as commands: users kept in the ledger, the console served by uvicorn."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ccm_tasks.ledger import Ledger
from ccm_tasks.ledger.users import Users


def _ccm(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccm_tasks.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_users_add_list_disable(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.sqlite")
    added = _ccm("users", "add", "asha", "--role", "operator", "--password-stdin", "--ledger", ledger,
                 stdin="a long enough password\n")
    assert added.returncode == 0 and "added asha (operator)" in added.stdout
    short = _ccm("users", "add", "ravi", "--password-stdin", "--ledger", ledger, stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    again = _ccm("users", "add", "asha", "--password-stdin", "--ledger", ledger, stdin="another long one\n")
    assert again.returncode == 2 and "already a user named 'asha'" in again.stderr
    assert _ccm("users", "disable", "asha", "--ledger", ledger).returncode == 0
    listing = _ccm("users", "list", "--ledger", ledger).stdout
    assert "asha" in listing and "operator" in listing and "disabled" in listing
    users = Users(Ledger(ledger))
    assert users.verify("asha", "a long enough password") is None  # disabled
    assert users.get("asha") is not None
    stored = str(Ledger(ledger).engine.connect().exec_driver_sql(
        "SELECT password_hash FROM console_users").scalar())
    assert stored.startswith("$argon2id$") and "a long enough password" not in stored


def test_ccm_console_serves(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"CCM_HOME": str(tmp_path)}
    _ccm("users", "add", "admin", "--role", "admin", "--password-stdin", stdin="admin password 1\n", env=env)
    child = subprocess.Popen([sys.executable, "-m", "ccm_tasks.cli", "console", "--port", str(port)],
                             env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError("ccm console did not answer")
        assert health.json() == {"ok": True}
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/"
        assert "server" not in page.headers
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        output, _ = child.communicate(timeout=30)
    assert f"ccm console on http://127.0.0.1:{port}/" in output
