"""Run the engine against a real simulator over HTTP with a real SQLite ledger (no Prefect)."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccm_tasks.callbacks import CallbackHub, callback_url, create_receiver_app
from ccm_tasks.dialer.budget import ApiBudget
from ccm_tasks.dialer.config import EngineConfig
from ccm_tasks.dialer.engine import CampaignEngine
from ccm_tasks.dialer.policy import Policy
from ccm_tasks.dialer.window import DialWindow
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.models import StatusCallback
from ccm_tasks.ledger import Ledger
from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import BackgroundServer, SimulatorServer


@dataclass(frozen=True)
class RosterAgent:
    agent_key: str
    user_id: str | None
    contact_uri: str | None
    name: str | None = None


def roster(n: int, prefix: str = "agent-") -> list[RosterAgent]:
    return [RosterAgent(f"{prefix}{i:03d}", f"{prefix}{i:03d}", f"+91980000{i:04d}") for i in range(1, n + 1)]


def customers(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"customer_key": f"+9199{i:08d}", "phone": f"+9199{i:08d}"} for i in range(start, start + n)]


ALWAYS_OPEN = DialWindow(start=__import__("datetime").time(0, 0), end=__import__("datetime").time(23, 59, 59))


@dataclass
class Setup:
    sim: SimulatorServer
    ledger: Ledger
    campaign_id: int
    config: EngineConfig
    agents: list[RosterAgent]
    engines: list[CampaignEngine] = field(default_factory=list)


RECEIVERS: list[BackgroundServer] = []


def make_engine(sim: SimulatorServer, ledger: Ledger, *, campaign: str, agents: list[RosterAgent],
                people: list[dict[str, Any]], config: EngineConfig | None = None,
                per_minute: int = 100000, client_kw: dict[str, Any] | None = None,
                callbacks: bool | str = False) -> CampaignEngine:
    """An engine on ``sim``. ``callbacks=True`` starts a receiver here (direct wake-up);
    ``callbacks="<base url>"`` points Make Call at a receiver elsewhere (the ledger inbox)."""
    clock = sim.clock
    now = clock.time()
    config = config or EngineConfig(campaign=campaign, virtual_number="+918045680000", window=ALWAYS_OPEN)
    holder = ledger.register_holder(campaign)
    cid = ledger.upsert_campaign(campaign, definition_path="-", timezone="Asia/Kolkata", now=now)
    hub = None
    if callbacks:
        token = ledger.callback_token(cid)
        if callbacks is True:
            hub = CallbackHub()
            server = BackgroundServer(create_receiver_app(ledger, hub, clock=clock)).start()
            RECEIVERS.append(server)
            base = server.base_url
        else:
            base = str(callbacks)
        url = callback_url(base, token)
        config = dataclasses.replace(config, status_callbacks=(
            StatusCallback(event="answered", url=url), StatusCallback(event="terminal", url=url)))
    assert ledger.claim_campaign(cid, holder, now) is None
    ledger.sync_customers(cid, people, now)
    run_id = ledger.start_run(cid, holder, now)
    budget = ApiBudget(per_minute, clock)
    client = CCMClient(**{**sim.client_settings(), **(client_kw or {})}, clock=clock, gate=budget)
    engine = CampaignEngine(config=config, ledger=ledger, client=client, budget=budget, clock=clock,
                            campaign_id=cid, run_id=run_id, holder_id=holder, agents=agents,
                            customers=ledger.customer_rows(cid))
    if hub is not None:
        hub.subscribe(cid, engine.deliver_callback)
    return engine


def finish(engine: CampaignEngine) -> None:
    """What a real run does at its end: give up the campaign and retire its holder."""
    engine.ledger.release_campaign(engine.campaign_id, engine.holder_id, "done", None, engine.clock.time())
    engine.ledger.retire_holder(engine.holder_id)


def settle(sim: SimulatorServer, key: str, quiet: float = 0.3, limit: float = 10.0) -> int:
    """Wait until a simulator counter stops changing (deliveries still in flight), return it."""
    import time

    value, since, deadline = sim.counters().get(key, 0), time.time(), time.time() + limit
    while time.time() < deadline:
        time.sleep(0.05)
        now = sim.counters().get(key, 0)
        if now != value:
            value, since = now, time.time()
        elif time.time() - since >= quiet:
            break
    return int(value)


def stop_receivers() -> None:
    while RECEIVERS:
        RECEIVERS.pop().stop()


def quick_config(campaign: str = "c1", **kw: Any) -> EngineConfig:
    policy = kw.pop("policy", Policy(max_attempts=3, interval_seconds=120))
    return EngineConfig(campaign=campaign, virtual_number=kw.pop("virtual_number", "+918045680000"),
                        window=kw.pop("window", ALWAYS_OPEN), policy=policy,
                        **{"agent_cooldown": 10, "agent_recheck": 30, "sticky_wait": 20, **kw})


def fast_scenario(**overrides: Any) -> Scenario:
    data: dict[str, Any] = {
        "seed": 5, "time_scale": 600,
        "agent_pool": {"count": 0},
        "behaviour": {"talk_seconds": {"kind": "uniform", "low": 20, "high": 90},
                      "agent_ring_seconds": [2, 6], "customer_ring_seconds": [3, 15],
                      "post_processing_seconds": [1, 4]},
    }
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return Scenario.model_validate(data)


def sim_agents(agents: list[RosterAgent], **extra: Any) -> list[dict[str, Any]]:
    return [{"user_id": a.user_id, "contact_uri": a.contact_uri, **extra} for a in agents]


def check_dial_log(log: list[dict[str, Any]], *, max_dials: int | None = None) -> dict[str, Any]:
    """No agent with two overlapping calls (creation to terminal), and dial counts per customer."""
    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_customer: dict[str, int] = defaultdict(int)
    for row in log:
        by_agent[row["agent"]].append(row)
        by_customer[row["customer"]] += 1
    overlaps = []
    for agent, rows in by_agent.items():
        rows.sort(key=lambda r: r["created"])
        for a, b in itertools.pairwise(rows):
            if b["created"] < a["terminal"]:
                overlaps.append((agent, a["call_sid"], b["call_sid"], a["terminal"] - b["created"]))
    too_many = {c: n for c, n in by_customer.items() if max_dials is not None and n > max_dials}
    return {"overlaps": overlaps, "too_many": too_many, "per_customer": dict(by_customer)}


def final_states(ledger: Ledger, campaign_id: int) -> dict[str, str | None]:
    return {r.customer_key: (r.final_status if r.state == "done" else r.state)
            for r in ledger.customer_rows(campaign_id)}


def open_ledger(tmp: Path, name: str = "ledger.sqlite") -> Ledger:
    return Ledger(tmp / name)


