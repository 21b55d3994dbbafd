"""A local CCM: a pure state machine with an injectable clock, its HTTP app, and scenarios."""

from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import SimulatorServer

__all__ = ["Scenario", "SimulatorServer"]
