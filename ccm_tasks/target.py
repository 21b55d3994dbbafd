"""Where calls go, chosen in one place from settings (dagster's resources pattern).

:func:`target_from_settings` returns the whole set of implementations a run needs: the CCM client,
its clock, the built-in simulator when there is one, and the account's API budget:

* ``EXOTEL_API_KEY``, ``EXOTEL_API_TOKEN`` and ``EXOTEL_ACCOUNT_SID`` set: the real CCM API in
  ``EXOTEL_REGION``, or the stand-in at ``EXOTEL_BASE_URL`` (whose clock is shared only when
  ``CCM_SIM_CLOCK`` says so: nothing but the API's own requests is ever sent to it);
* otherwise: the built-in simulator, started in this process with the campaign's own agents and
  virtual number (``CCM_SIM_SCENARIO``, ``CCM_SIM_TIME_SCALE``), and every message says so.

The budget is the account's bucket in the ledger (one per account, across processes and machines),
with the campaign's own cap in front when its definition sets ``api_budget_per_minute``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ccm_tasks.clock import Clock, ScaledClock, SystemClock
from ccm_tasks.dialer.budget import AccountBudget, ApiBudget, CampaignGate
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.ledger import Ledger
from ccm_tasks.settings import ExotelSettings, SimSettings
from ccm_tasks.simulator.scenario import Scenario, ScenarioAgent
from ccm_tasks.simulator.server import SimulatorServer


class RosterAgent(Protocol):
    """What the simulator's world needs of an agent."""

    @property
    def user_id(self) -> str | None: ...
    @property
    def contact_uri(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...


@dataclass(frozen=True)
class World:
    """What the built-in simulator must know to stand in for an account: agents and numbers
    (``behaviours``: how particular customer numbers behave, e.g. ``{"+9199...": "answers"}``)."""

    agents: Sequence[RosterAgent] = ()
    virtual_numbers: Sequence[str] = ()
    behaviours: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """Where calls go (the real API, a stand-in server, or the built-in simulator), the client that
    sends them and the budget that admits them."""

    client: CCMClient
    clock: Clock
    budget: CampaignGate
    description: str
    simulated: bool
    account: str  # "<sid>@<base url>": names the account's budget in the ledger
    requests_per_minute: int
    simulator: SimulatorServer | None = None

    async def aclose(self) -> None:
        """Close the client, the budget's thread and an embedded simulator."""
        await self.client.aclose()
        if isinstance(self.budget.account, AccountBudget):
            self.budget.account.close()
        if self.simulator is not None:
            self.simulator.stop()


def shared_clock(spec: str | None) -> Clock:
    """The clock ``CCM_SIM_CLOCK`` describes (``"<scale>@<wall0>[@<sim0>]"``), else real time."""
    if not spec:
        return SystemClock()
    parts = [float(p) for p in spec.split("@")]
    return ScaledClock.anchored(parts[0], parts[1], parts[2] if len(parts) > 2 else None)


def simulator_scenario(world: World, sim: SimSettings) -> Scenario:
    """The built-in simulator's world for a campaign: its agents (devices on) and its numbers."""
    base = Scenario.from_file(sim.scenario) if sim.scenario else Scenario.builtin("default")
    agents: list[ScenarioAgent] = []
    for i, agent in enumerate(world.agents, start=1):
        agents.append(ScenarioAgent(user_id=agent.user_id or f"sim-user-{i:04d}",
                                    contact_uri=agent.contact_uri or f"+9197{i:08d}", name=agent.name))
    known = {a.user_id for a in agents} | {a.contact_uri for a in agents}
    extra = [a for a in base.agents if a.user_id not in known and a.contact_uri not in known]
    update: dict[str, Any] = {
        **({"agents": agents + extra, "agent_pool": None} if agents else {}),
        "virtual_numbers": sorted(set(base.virtual_numbers) | set(world.virtual_numbers)),
        "numbers": {**base.numbers, **world.behaviours},
        "account": base.account if sim.scenario else base.account.model_copy(update={"voip_enabled": True}),
    }
    if sim.time_scale is not None:
        update["time_scale"] = sim.time_scale
    return base.model_copy(update=update)


def account_budget(ledger: Ledger, account: str, per_minute: int, clock: Clock,
                   cap_per_minute: int | None = None) -> CampaignGate:
    """The account's bucket in ``ledger``, behind the campaign's own cap when it has one."""
    cap = ApiBudget(cap_per_minute, clock) if cap_per_minute else None
    return CampaignGate(AccountBudget(ledger, account, per_minute, clock), cap)


def target_from_settings(world: World, ledger: Ledger, *, cap_per_minute: int | None = None,
                         exotel: ExotelSettings | None = None, sim: SimSettings | None = None) -> Target:
    """The real API with credentials (or a stand-in at EXOTEL_BASE_URL); else the built-in simulator."""
    exotel = exotel or ExotelSettings()
    sim = sim or SimSettings()
    if exotel.has_credentials:
        assert exotel.account_sid is not None
        clock = shared_clock(sim.clock)
        where = exotel.resolved_base_url
        account, per_minute = f"{exotel.account_sid}@{where}", exotel.requests_per_minute
        budget = account_budget(ledger, account, per_minute, clock, cap_per_minute)
        client = CCMClient.from_settings(exotel, clock=clock, gate=budget)
        simulated = not isinstance(clock, SystemClock)
        label = "simulator" if simulated else ("stand-in" if exotel.base_url else "CCM API")
        return Target(client, clock, budget, f"{label} at {where}", simulated, account, per_minute)
    scenario = simulator_scenario(world, sim)
    server = SimulatorServer(scenario).start()
    acc = scenario.account
    account = f"{acc.sid}@{server.base_url}"
    per_minute = acc.rate_limit_per_minute or exotel.requests_per_minute
    budget = account_budget(ledger, account, per_minute, server.clock, cap_per_minute)
    client = CCMClient(**server.client_settings(), clock=server.clock, gate=budget)
    return Target(client, server.clock, budget,
                  f"built-in simulator at {server.base_url} ({scenario.time_scale:g}x time)", True, account,
                  per_minute, server)
