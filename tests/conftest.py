"""Shared fixtures: real simulators on loopback, real receivers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import SimulatorServer
from tests.support import Receiver


@pytest.fixture(autouse=True)
def _home_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own CCM_HOME (var/journals, default ledger and reports) unless it sets one,
    so nothing a test writes lands in the checkout."""
    if "CCM_HOME" not in os.environ:
        monkeypatch.setenv("CCM_HOME", str(tmp_path_factory.mktemp("ccm-home")))


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., SimulatorServer]]:
    """Start simulators from scenario dicts (600x time, seed 3 unless given); stopped at teardown."""
    started: list[SimulatorServer] = []

    def factory(scenario: Scenario | dict[str, Any] | None = None, **overrides: Any) -> SimulatorServer:
        if isinstance(scenario, Scenario):
            sc = scenario.model_copy(update=overrides)
        else:
            data: dict[str, Any] = {"time_scale": 600, "seed": 3, **(scenario or {}), **overrides}
            sc = Scenario.model_validate(data)
        sim = SimulatorServer(sc).start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    """A simulator at 600x with the default behaviour and ten agents."""
    return make_simulator()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A callback receiver on loopback."""
    r = Receiver()
    r.server.start()
    yield r
    r.server.stop()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server with a throwaway database, one per test session (~10-20 s to start;
    used by the flows' and the console's tests)."""
    from ccm_tasks.logs import quiet_prefect_env

    quiet_prefect_env()
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# --------------------------------------------------------------------------- what CI must not skip


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI, a ``needs <what>:`` skip of a required thing (tests.support.NEEDS) is a failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    required = {w.strip() for w in os.environ.get("CCM_CI_REQUIRE", "").split(",") if w.strip()}
    if not report.skipped or not required or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    for what in required:
        if reason.startswith(f"needs {what}:"):
            report.outcome = "failed"
            report.longrepr = f"CI requires {what}, but the test skipped: {reason}"


# --------------------------------------------------------------------------- ledgers: SQLite and PostgreSQL


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster for the session (tests.pg); skips loudly without the binaries."""
    import subprocess

    from tests.pg import start_cluster
    from tests.support import needs

    try:
        cluster = start_cluster()
    except (FileNotFoundError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(needs("postgresql", f"{exc} {detail.decode(errors='replace')[-300:]}"))
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh ledger location: a SQLite file, then a PostgreSQL database (each test runs on both)."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return str(request.getfixturevalue("pg_cluster").database())


# --------------------------------------------------------------------------- the two halves of make test

SERVER_MODULES = {"test_prefect_server", "test_prefect_kills", "test_topology"}
"""Tests against a real ``prefect server start``: most of their time is spent waiting on the server
(its scheduler's next minute, 30 s flow-run heartbeats), so ``make test`` runs them beside the rest."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SERVER_MODULES:
            item.add_marker(pytest.mark.prefect_server)
