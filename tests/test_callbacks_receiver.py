"""The status-callback receiver over real HTTP: every bad request gets a 4xx and changes nothing."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ccm_tasks.callbacks import CallbackHub, callback_url, create_receiver_app
from ccm_tasks.ledger import Ledger
from ccm_tasks.simulator.server import BackgroundServer
from tests.support import spec_example


@pytest.fixture
def setup(ledger_url: str) -> Iterator[dict[str, Any]]:
    ledger = Ledger(ledger_url)
    holder = ledger.register_holder("t")
    cid = ledger.upsert_campaign("c1", definition_path="-", timezone="Asia/Kolkata", now=1.0)
    ledger.sync_customers(cid, [{"customer_key": "+919953123456", "phone": "+919953123456"}], 1.0)
    customer = ledger.customer_rows(cid)[0]
    # The agent of the spec's callback examples (a payload about another agent is refused).
    agent = spec_example("mc_03_callback_terminal")["call_details"]["assigned_agent_details"]["user_id"]
    claim = ledger.claim(agent_key=agent, agent_name=None, holder_id=holder, campaign_id=cid,
                         run_id=None, customer_id=customer.id, attempt_no=1, now=2.0)
    assert claim.attempt_id and claim.attempt_uid
    ledger.mark_placed(claim.attempt_id, agent_key=agent, call_sid="sid-1", details={}, now=3.0)
    token = ledger.callback_token(cid)
    hub = CallbackHub()
    server = BackgroundServer(create_receiver_app(ledger, hub, max_body=16 * 1024)).start()
    yield {"ledger": ledger, "url": callback_url(server.base_url, token), "base": server.base_url,
           "uid": claim.attempt_uid, "token": token, "hub": hub, "campaign_id": cid}
    server.stop()


def payload(uid: str, event: str = "terminal", call_sid: str = "sid-1") -> dict[str, Any]:
    body = copy.deepcopy(spec_example("mc_03_callback_terminal" if event == "terminal"
                                      else "mc_01_callback_answered"))
    body["call_details"].update({"custom_field": uid, "call_sid": call_sid})
    return body


def post(url: str, **kw: Any) -> httpx.Response:
    return httpx.post(url, timeout=10, **kw)


def test_a_valid_callback_is_recorded_once(setup: dict[str, Any]) -> None:
    first = post(setup["url"], json=payload(setup["uid"]))
    again = post(setup["url"], json=payload(setup["uid"]))
    assert first.status_code == again.status_code == 200
    assert first.json() == {"ok": True, "duplicate": False} and again.json()["duplicate"] is True
    answered = post(setup["url"], json=payload(setup["uid"], "answered"))
    assert answered.status_code == 200 and answered.json()["duplicate"] is False
    assert setup["ledger"].count("callback_events") == 2


async def test_the_dialer_in_this_process_is_told(setup: dict[str, Any]) -> None:
    import asyncio

    got: list[Any] = []
    setup["hub"].subscribe(setup["campaign_id"], got.append)
    await asyncio.to_thread(post, setup["url"], json=payload(setup["uid"]))
    await asyncio.sleep(0.05)
    assert len(got) == 1 and got[0].event_type == "terminal" and got[0].details.call_sid == "sid-1"


@pytest.mark.parametrize(("make", "status"), [
    (lambda s: post(s["base"] + "/v1/callbacks/not-the-token", json=payload(s["uid"])), 404),
    (lambda s: post(s["url"][:-1] + "x", json=payload(s["uid"])), 404),
    (lambda s: post(s["url"], content=b"{not json", headers={"content-type": "application/json"}), 400),
    (lambda s: post(s["url"], json={"event_details": {"event_type": "ringing"}, "call_details": {}}), 422),
    (lambda s: post(s["url"], json=[1, 2, 3]), 422),
    (lambda s: post(s["url"], content=b"x" * (17 * 1024)), 413),
    (lambda s: post(s["url"], content=iter([b"{" + b" " * 10_000, b" " * 10_000 + b"}"])), 413),
    (lambda s: post(s["url"], json=payload("no-such-attempt", call_sid="other-sid")), 404),
    (lambda s: post(s["url"], json=payload(s["uid"], call_sid="someone-elses-sid")), 409),
])
def test_bad_callbacks_get_4xx_and_change_nothing(setup: dict[str, Any], make: Any, status: int) -> None:
    response = make(setup)
    assert response.status_code == status, response.text
    assert setup["ledger"].count("callback_events") == 0


def test_the_token_never_reaches_the_logs(setup: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    post(setup["url"], json=payload(setup["uid"]))
    post(setup["base"] + "/v1/callbacks/wrong", json=payload(setup["uid"]))
    post(setup["url"], content=b"nope")
    # The test's own httpx client plays Exotel and logs the URL it posts to; the receiver's side
    # (our loggers and uvicorn's) must not.
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "ccm.callbacks" for r in ours)
    assert all(setup["token"] not in r.getMessage() for r in ours)
    # And should anything log it anyway, the redaction filter already knows it.
    from ccm_tasks.redact import redaction_filter

    assert setup["token"] not in redaction_filter().redact(f"url .../v1/callbacks/{setup['token']}")


def test_deeply_nested_json_is_a_400_and_the_next_request_is_served(setup: dict[str, Any]) -> None:
    nested = b"[" * 7_000 + b"]" * 7_000  # 14 KB, under the body limit, deeper than the parser allows
    with httpx.Client(timeout=10) as client:  # one connection: the next request must not be reset
        first = client.post(setup["url"], content=nested, headers={"content-type": "application/json"})
        second = client.post(setup["url"], json=payload(setup["uid"]))
    assert first.status_code == 400 and second.status_code == 200
    assert setup["ledger"].count("callback_events") == 1


def test_a_body_that_trickles_in_is_cut_off(setup: dict[str, Any]) -> None:
    import socket
    import time
    from urllib.parse import urlsplit

    from ccm_tasks.callbacks import BODY_SECONDS

    url = urlsplit(setup["url"])
    started = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=BODY_SECONDS + 10) as sock:
        sock.sendall(f"POST {url.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 1000\r\n\r\n{{".encode())
        answer = sock.recv(4096).decode(errors="replace")  # we never send the rest
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < BODY_SECONDS + 3
    assert setup["ledger"].count("callback_events") == 0


def test_a_forged_terminal_payload_that_contradicts_the_ledger_changes_nothing(setup: dict[str, Any]) -> None:
    body = payload(setup["uid"])
    body["call_details"]["assigned_agent_details"]["user_id"] = "someone-else"
    response = post(setup["url"], json=body)
    assert response.status_code == 409 and "another agent" in response.text
    forged = payload(setup["uid"])
    forged["call_details"]["customer_details"]["contact_uri"] = "+919812345678"  # not this call's customer
    assert post(setup["url"], json=forged).status_code == 409
    assert setup["ledger"].count("callback_events") == 0


def test_a_flood_of_connections_is_bounded_and_the_log_stays_small(
        setup: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    import socket
    from urllib.parse import urlsplit

    caplog.set_level(logging.WARNING)
    url = urlsplit(setup["base"])
    held = []
    try:
        for _ in range(400):  # idle connections that never send a request
            held.append(socket.create_connection((url.hostname, url.port), timeout=5))
        # Past the bound new requests are answered 503 at once; the process keeps descriptors to work with.
        answers = [post(setup["base"] + "/v1/callbacks/wrong", json={}).status_code for _ in range(20)]
        with httpx.Client(timeout=5) as other:  # our own outgoing requests still work
            assert other.get(setup["base"] + "/v1/health").status_code in (200, 503)
    finally:
        for sock in held:
            sock.close()
    assert set(answers) <= {404, 503}
    assert len(caplog.records) < 30  # 20 rejections: a few lines, not one per request


def test_abuse_of_the_receiver_inside_ccm_run_leaves_the_dialer_working(tmp_path: Any) -> None:
    """``ccm run`` with its receiver in the same process and event loop, while 400 idle connections,
    deeply nested JSON and bodies that never finish arrive at the receiver: the campaign still
    completes (the simulator's callbacks refused, polls and Make Calls go on), and the log stays
    a few lines long."""
    import socket
    import subprocess
    import sys
    import time

    from ccm_tasks.simulator.scenario import Scenario
    from ccm_tasks.simulator.server import SimulatorServer
    from tests.dialer.campaign_files import ccm_env, write_campaign

    with socket.socket() as probe:  # a free port for the receiver (listen "host:0" would hide it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agents = [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(1, 4)]
    numbers = [f"+9199{i:08d}" for i in range(15)]
    world = {"time_scale": 20, "behaviour": {"talk_seconds": [20, 40]},
             "agents": [{"user_id": u, "contact_uri": c} for u, c in agents]}
    with SimulatorServer(Scenario.model_validate(world)) as sim:
        env = ccm_env(sim, tmp_path / "ledger.sqlite", tmp_path / "reports")
        definition = write_campaign(tmp_path / "c", "abused", agents=agents, numbers=numbers,
                                    callbacks={"enabled": True, "listen": f"127.0.0.1:{port}"},
                                    dialer={"wrap_up_seconds": 0})
        log = tmp_path / "run.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "ccm_tasks.cli", "run", "--no-prefect",
                                     str(definition)], env=env, stdout=out, stderr=subprocess.STDOUT)
        held: list[socket.socket] = []
        try:
            for _ in range(200):  # until the receiver is up and the first call is placed
                time.sleep(0.05)
                if sim.dial_log():
                    break
            for _ in range(400):
                held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            nested = b"[" * 7_000 + b"]" * 7_000
            for _ in range(20):
                try:
                    httpx.post(f"http://127.0.0.1:{port}/v1/callbacks/x", content=nested, timeout=5,
                               headers={"content-type": "application/json"})
                except httpx.HTTPError:
                    pass  # refused while the flood holds the receiver's connections: fine
            for _ in range(5):  # bodies that never finish
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"POST /v1/callbacks/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
                held.append(sock)
            code = proc.wait(timeout=240)
        finally:
            for sock in held:
                sock.close()
            if proc.poll() is None:
                proc.kill()
        counters = sim.counters()
        calls = sim.dial_log()
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "every customer has a final outcome" in text, text[-3000:]
    assert {r["customer"] for r in calls} == set(numbers)
    assert counters.get("get_requests", 0) > 0  # polls went on (callbacks were refused in the flood)
    assert "Traceback" not in text and "Too many open files" not in text
    assert "ConnectError" not in text, text[-3000:]  # the dialer's own requests were never starved
    assert len(text.splitlines()) < 80, text[-3000:]
    # uvicorn logs every connection refused past the bound: one line per 10 s, with the count held back.
    assert text.count("Exceeded concurrency limit") <= 10, text[-3000:]
