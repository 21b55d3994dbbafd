"""Launching from the console: a real child `ccm run` on the simulator, and never two runs of one campaign."""

from __future__ import annotations

import re
import threading
import time

import httpx

from ccm_tasks.console import controls
from ccm_tasks.simulator.server import BackgroundServer
from tests.console.conftest import PASSWORD, Console, csrf


def _signed_in(base: str, name: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=60)
    token = csrf(client.get("/login").text)
    signed = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    assert signed.status_code == 303
    return client, csrf(client.get("/").text)


def test_one_campaign_launched_twice_at_once_runs_once(console: Console) -> None:
    server = BackgroundServer(console.app).start()
    try:
        pairs = [_signed_in(server.base_url, "operator"), _signed_in(server.base_url, "admin")]
        results: list[httpx.Response] = []
        barrier = threading.Barrier(2)

        def launch(client: httpx.Client, token: str) -> None:
            barrier.wait()
            results.append(client.post("/campaigns/demo/launch", data={"csrf_token": token, "when": "now"}))

        threads = [threading.Thread(target=launch, args=pair) for pair in pairs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 409], [r.text[-800:] for r in results]
        refused = next(r for r in results if r.status_code == 409)
        assert "already running" in refused.text and "Nothing was started" in refused.text
        assert len(console.app.state.console.launcher.children()) == 1
        deadline = time.monotonic() + 120
        live_page: str | None = None
        while time.monotonic() < deadline:
            (status,) = controls.status(console.ledger, "demo")
            if status.runner is None:
                break
            if live_page is None and status.live_calls:  # what the campaign page polls, mid-run
                live_page = pairs[0][0].get("/campaigns/demo/live").text
            time.sleep(0.5)
        assert status.final == status.customers == 301, status
        # Mid-run, the live part shows the state, live calls, stuck and unknown calls, the budget in
        # use, and every agent with its state (and why, for those not taking calls).
        assert live_page is not None, "the run ended before a live call was seen"
        assert 'id="state">running<' in live_page and 'id="live-calls"' in live_page
        assert "Calls stuck" in live_page and "Outcome unknown" in live_page
        assert "API budget used (last minute)" in live_page
        agents = re.findall(r'<tr><th scope="row">[^<]+</th><td>([^<]+)</td><td>([^<]*)', live_page)
        assert len(agents) == 10 and "busy" in {state for state, _why in agents}, agents
        assert all(why for state, why in agents
                   if state in ("wrap-up", "cooling down", "unavailable")), agents
        assert console.ledger.count("runs") == 1
        page = pairs[0][0].get("/campaigns/demo/report")
        assert page.status_code == 200 and "completed" in page.text
    finally:
        console.stop_runs()
        server.stop()


def test_a_second_console_loses_to_the_ledger_lock(console: Console, make_console: object) -> None:
    """Two consoles (as on two machines) sharing a ledger: the run started second exits, and says why."""
    first = console.client("operator")
    token = csrf(first.get("/").text)
    started = first.post("/campaigns/demo/launch", data={"csrf_token": token, "when": "now"})
    assert started.status_code == 200, started.text
    other = make_console()  # type: ignore[operator]
    try:
        launcher = other.app.state.console.launcher
        launcher.live_run = lambda name: None  # this console's check is bypassed: only the lock is left
        second = other.client("operator")
        response = second.post("/campaigns/demo/launch", data={"csrf_token": csrf(second.get("/").text),
                                                               "when": "now"})
        assert response.status_code == 409 and "already running in another process" in response.text
    finally:
        other.stop_runs()


def test_launch_at_a_time_waits_for_it(console: Console) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    client = console.client("operator")
    token = csrf(client.get("/").text)
    demo = console.home / "campaigns" / "demo"
    made = client.post("/campaigns/new", data={"csrf_token": token, "name": "tonight",
                                               "virtual_number": "+918045680000", "roster": "0"},
                       files=[("customers", ("customers.csv", (demo / "customers.csv").read_bytes()))])
    assert made.status_code == 303
    later = (datetime.now(ZoneInfo("Asia/Kolkata")) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    launched = client.post("/campaigns/tonight/launch", data={"csrf_token": token, "when": "at",
                                                              "start_at": later})
    assert launched.status_code == 200 and "Started `ccm run`" in launched.text, launched.text
    written = (console.home / "campaigns" / "tonight" / "tonight.yaml").read_text()
    assert f"start_at: '{later}:00+05:30'" in written
    (status,) = controls.status(console.ledger, "tonight")
    assert status.runner is not None and status.final == 0  # holding the campaign, waiting: nothing dialled
    assert console.ledger.count("attempts") == 0
