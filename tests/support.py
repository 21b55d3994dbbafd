"""Helpers shared by tests: spec fixtures, clients bound to simulators, callback receivers."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.simulator.server import BackgroundServer, SimulatorServer

SPEC_FIXTURES = Path(__file__).parent / "fixtures" / "spec"


def spec_example(name: str) -> Any:
    """A JSON example from the spec, verbatim (tests/fixtures/spec/<name>.json)."""
    return json.loads((SPEC_FIXTURES / f"{name}.json").read_text())


def client_for(sim: SimulatorServer, **kwargs: Any) -> CCMClient:
    """A client speaking to ``sim`` on its clock."""
    kwargs.setdefault("clock", sim.clock)
    return CCMClient(**{**sim.client_settings(), **kwargs})


class Receiver:
    """A real HTTP endpoint that records what is POSTed to it (status callbacks)."""

    def __init__(self, status_code: int = 200) -> None:
        self.received: list[dict[str, Any]] = []
        self.status_code = status_code
        self._lock = threading.Lock()
        app = FastAPI()

        @app.post("/{path:path}")
        async def receive(path: str, request: Request) -> JSONResponse:
            body = await request.json()
            with self._lock:
                self.received.append({"path": path, "body": body})
            return JSONResponse({"ok": True}, status_code=self.status_code)

        self.server = BackgroundServer(app)

    @property
    def url(self) -> str:
        return self.server.base_url

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r["body"] for r in self.received]


NEEDS = ("postgresql", "browser", "libreoffice", "prefect-server")
"""Tests that need one of these skip with a reason starting ``needs <name>:`` (use :func:`needs`)
when it is missing. Under CI (``CCM_CI_REQUIRE=postgresql,browser,...``, set by .ci/run) such a
skip is a failure: what CI is for must run there."""


def needs(what: str, why: str) -> str:
    """The skip reason for a missing external thing (one of NEEDS)."""
    assert what in NEEDS, what
    return f"needs {what}: {why}"
