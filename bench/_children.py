"""Child processes of the dialer benchmark: the engine, and the bare loops it is compared with.

Each prints one JSON line: CPU seconds and peak RSS of its own process, and its request counts.
The simulator runs in another process; a child shares its simulated clock through the spec
``ccm simulator`` prints (``CCM_SIM_CLOCK``), read by :func:`ccm_tasks.target.shared_clock`.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIM_ACCOUNT = {"api_key": "sim-key", "api_token": "sim-token", "account_sid": "sim-account"}


def _usage() -> dict[str, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu": ru.ru_utime + ru.ru_stime, "maxrss_mib": ru.ru_maxrss / 1024}


class _Agent:
    def __init__(self, key: str) -> None:
        self.agent_key = self.user_id = key
        self.contact_uri = None
        self.name = key


def _profiler() -> Any:
    """``CCM_BENCH_PROFILE=FILE``: cProfile the engine's run into FILE (pstats format)."""
    if not os.environ.get("CCM_BENCH_PROFILE"):
        return None
    import cProfile

    profile = cProfile.Profile()
    profile.enable()
    return profile


def _customers(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [{"customer_key": f"+9199{i:08d}", "phone": f"+9199{i:08d}"} for i in range(offset, offset + n)]


def _budget(spec: dict[str, Any], ledger: Any, clock: Any) -> Any:
    """The process's own bucket, or (``shared_budget``) the account's bucket in the ledger."""
    from ccm_tasks.dialer.budget import ApiBudget
    from ccm_tasks.target import account_budget

    if spec.get("shared_budget"):
        return account_budget(ledger, f"sim-account@{spec['url']}", spec["per_minute"], clock)
    return ApiBudget(spec["per_minute"], clock)


async def engine(spec: dict[str, Any]) -> dict[str, Any]:
    """One campaign's engine, as tests/dialer/harness.py builds it (no Prefect, no definition file).

    ``ledger``: a path or URL shared with other children (default: a fresh SQLite file);
    ``shared_budget``: draw from the account's bucket in that ledger (several processes on one
    account) instead of a bucket of this process; ``start_at``/``end_at``: the calling window, in
    simulated epoch seconds (several processes start together); ``wrap_up``: seconds an agent gets
    after a call they answered (``dialer.wrap_up_seconds``).
    """
    import dataclasses
    from datetime import time as dtime

    from ccm_tasks.dialer.budget import AccountBudget, CampaignGate
    from ccm_tasks.dialer.config import EngineConfig
    from ccm_tasks.dialer.engine import CampaignEngine
    from ccm_tasks.dialer.policy import Policy
    from ccm_tasks.dialer.window import DialWindow
    from ccm_tasks.exotel.client import CCMClient
    from ccm_tasks.ledger import Ledger
    from ccm_tasks.target import shared_clock

    url, n_agents, n_customers = spec["url"], spec["agents"], spec["customers"]
    if spec.get("ledger_on_loop"):
        _ledger_on_the_loop()
    clock = shared_clock(spec.get("clock"))
    ledger = Ledger(spec.get("ledger") or Path(tempfile.mkdtemp()) / "bench.sqlite")
    name = spec.get("campaign", "bench")
    now = clock.time()
    holder = ledger.register_holder(name)
    cid = ledger.upsert_campaign(name, definition_path="-", timezone="Asia/Kolkata", now=now)
    assert ledger.claim_campaign(cid, holder, now) is None
    ledger.sync_customers(cid, _customers(n_customers, spec.get("customer_offset", 0)), now)
    run_id = ledger.start_run(cid, holder, now)
    end_at = spec.get("end_at") or (now + spec["duration"] if spec.get("duration") else None)
    window = DialWindow(start=dtime(0), end=dtime(23, 59, 59), start_at=spec.get("start_at"), end_at=end_at)
    config = EngineConfig(campaign=name, virtual_number="+918045680000", window=window,
                          policy=Policy(max_attempts=1, retry_on=frozenset(), max_agent_side_retries=0,
                                        customer_no_dial_max_retries=0),
                          max_pending_posts=spec.get("max_pending_posts", 8),
                          wrap_up=spec.get("wrap_up", 0.0))
    receiver = hub = None
    if spec.get("callbacks"):
        from ccm_tasks.callbacks import CallbackHub, callback_url, create_receiver_app
        from ccm_tasks.exotel.models import StatusCallback
        from ccm_tasks.simulator.server import BackgroundServer

        hub = CallbackHub()
        receiver = BackgroundServer(create_receiver_app(ledger, hub, clock=clock)).start()
        cb = callback_url(receiver.base_url, ledger.callback_token(cid))
        config = dataclasses.replace(config, status_callbacks=(
            StatusCallback(event="answered", url=cb), StatusCallback(event="terminal", url=cb)))
    budget = _budget(spec, ledger, clock)
    client = CCMClient(base_url=url, **SIM_ACCOUNT, clock=clock, gate=budget, max_connections=100)
    agents = [_Agent(f"agent-{i:04d}") for i in range(1, n_agents + 1)]
    eng = CampaignEngine(config=config, ledger=ledger, client=client, budget=budget, clock=clock,
                         campaign_id=cid, run_id=run_id, holder_id=holder, agents=agents,
                         customers=ledger.customer_rows(cid))
    if hub is not None:
        hub.subscribe(cid, eng.deliver_callback)
    profile = _profiler()
    lags: list[tuple[float, float]] = []
    probe = asyncio.ensure_future(_loop_probe(lags)) if spec.get("probe") else None
    before, t0 = _usage(), time.perf_counter()
    result = await eng.run()
    after = _usage()
    if probe is not None:
        probe.cancel()
    if profile is not None:
        profile.disable()
        profile.dump_stats(os.environ["CCM_BENCH_PROFILE"])
    await client.aclose()
    if receiver is not None:
        receiver.stop()
    if isinstance(budget, CampaignGate) and isinstance(budget.account, AccountBudget):
        budget.account.close()
    ledger.release_campaign(cid, holder, result.status, result.reason, clock.time())
    ledger.retire_holder(holder)
    return {"cpu": after["cpu"] - before["cpu"], "wall": time.perf_counter() - t0,
            "maxrss_mib": after["maxrss_mib"], "status": result.status, "reason": result.reason,
            "placed": eng.state.placed, "requests": dict(client.stats), "rate_limited": budget.rate_limited,
            "callbacks_used": eng.callbacks_used, "lags": lags}


async def _loop_probe(lags: list[tuple[float, float]], every: float = 0.01) -> None:
    """How late the event loop wakes a 10 ms sleep: (wall time, lateness in seconds) each time."""
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(every)
        lags.append((time.time(), time.perf_counter() - t0 - every))


def _ledger_on_the_loop() -> None:
    """Run every ledger call on the event loop, as the engine did before its ledger thread
    (bench (e)'s "before"): the call blocks the loop for as long as the database makes it wait."""
    from ccm_tasks.dialer.db import LedgerThread

    async def inline(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    LedgerThread.__call__ = inline  # type: ignore[method-assign]


def insert(spec: dict[str, Any]) -> dict[str, Any]:
    """Another process's big write: ``sync_customers`` of ``customers`` new customers into a
    campaign of its own in the shared ledger, starting at wall time ``start_at``."""
    from ccm_tasks.ledger import Ledger

    ledger = Ledger(spec["ledger"])
    rows = _customers(spec["customers"], offset=5 * 10**7)
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    cid = ledger.upsert_campaign("bulk", definition_path="-", timezone="Asia/Kolkata", now=time.time())
    started = time.time()
    ledger.sync_customers(cid, rows, started)
    return {"started": started, "ended": time.time()}


async def bare(spec: dict[str, Any]) -> dict[str, Any]:
    """The bare loop: one task per agent, POST then GET until terminal; optional fixed polling and
    a plain token bucket (the naive dialer a team would write first)."""
    import httpx

    from ccm_tasks.target import shared_clock

    url, n_agents, n_customers = spec["url"], spec["agents"], spec["customers"]
    clock = shared_clock(spec.get("clock"))
    poll = float(spec.get("poll_every", 0.0))
    wrap_up = float(spec.get("wrap_up", 0.0))
    per_second = spec["per_minute"] / 60.0
    tokens = {"t": 1.0, "last": clock.time()}
    end_at = clock.time() + spec["duration"] if spec.get("duration") else None

    async def take() -> None:
        while True:
            now = clock.time()
            tokens["t"] = min(1.0, tokens["t"] + (now - tokens["last"]) * per_second)
            tokens["last"] = now
            if tokens["t"] >= 1:
                tokens["t"] -= 1
                return
            await clock.sleep((1 - tokens["t"]) / per_second)

    queue = list(range(n_customers))
    counts = {"post": 0, "get": 0, "429": 0}
    # At most as many requests in flight as the pool has connections: 1,000 tasks queueing inside
    # httpcore's pool cost ~2x the CPU per request, and no sane loop would be written that way.
    in_flight = asyncio.Semaphore(100)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, auth=("sim-key", "sim-token"), limits=limits,
                                 timeout=60) as http:
        async def agent(i: int) -> None:
            while queue and (end_at is None or clock.time() < end_at):
                n = queue.pop()
                await take()
                counts["post"] += 1
                try:
                    async with in_flight:
                        r = await _post(http, i, n)
                except httpx.TransportError:
                    # Sent, answer lost: a careful loop never re-POSTs (it could ring twice).
                    counts["post_lost"] = counts.get("post_lost", 0) + 1
                    continue
                if r.status_code != 200:
                    key = "429" if r.status_code == 429 else "post_errors"
                    counts[key] = counts.get(key, 0) + 1
                    queue.append(n)
                    await clock.sleep(1.0)
                    continue
                sid = r.json()["response"]["data"]["call_sid"]
                while True:
                    if poll:
                        await clock.sleep(poll)
                    await take()
                    counts["get"] += 1
                    try:
                        async with in_flight:
                            g = await http.get(f"/v2/accounts/sim-account/calls/{sid}")
                    except httpx.TransportError:
                        counts["get_lost"] = counts.get("get_lost", 0) + 1
                        continue
                    if g.status_code == 200 and g.json()["response"]["data"]["call_state"] == "terminal":
                        agent_leg = g.json()["response"]["data"].get("assigned_agent_details") or {}
                        if wrap_up and agent_leg.get("status") == "completed":
                            await clock.sleep(wrap_up)  # the same after-call work the engine gives
                        break
                    if g.status_code == 429:
                        counts["429"] += 1

        before, t0 = _usage(), time.perf_counter()
        await asyncio.gather(*(agent(i) for i in range(1, n_agents + 1)))
        after = _usage()
    return {"cpu": after["cpu"] - before["cpu"], "wall": time.perf_counter() - t0,
            "maxrss_mib": after["maxrss_mib"], "placed": counts["post"], "requests": counts}


async def _post(http: Any, agent: int, n: int) -> Any:
    return await http.post("/v2/accounts/sim-account/calls", json={
        "from": {"user_id": f"agent-{agent:04d}"}, "to": {"customer_contact_uri": f"+9199{n:08d}"},
        "virtual_number": "+918045680000", "custom_field": f"bare-{n}"})


KINDS = {"engine": engine, "bare": bare}

if __name__ == "__main__":
    kind, spec = sys.argv[1], json.loads(sys.argv[2])
    out = insert(spec) if kind == "insert" else asyncio.run(KINDS[kind](spec))
    print(json.dumps(out))
