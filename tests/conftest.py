"""Shared fixtures: real simulators on loopback, real receivers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import SimulatorServer
from tests.support import Receiver


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
