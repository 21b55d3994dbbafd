"""No credential in logs, reprs, exception text or tracebacks, whatever goes wrong."""

from __future__ import annotations

import base64
import logging
import traceback

import httpx
import pytest

from ccm_tasks.exotel import errors as E
from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.settings import ExotelSettings
from ccm_tasks.simulator.server import SimulatorServer
from tests.exotel.test_exotel_client import call

KEY = "KEY-7f1c2e9a4b"
TOKEN = "TOKEN-d41d8cd98f00b204"


async def test_credentials_never_leak(make_simulator, caplog: pytest.LogCaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    sim: SimulatorServer = make_simulator(
        account={"api_key": KEY, "api_token": TOKEN, "rate_limit_per_minute": 3},
        faults={"drop_connection_rate": 0.3, "server_error_rate": 0.2}, seed=21, time_scale=6000)
    texts: list[str] = []

    def keep(exc: BaseException) -> None:
        texts.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

    monkeypatch.setenv("EXOTEL_API_KEY", KEY)
    monkeypatch.setenv("EXOTEL_API_TOKEN", TOKEN)
    monkeypatch.setenv("EXOTEL_ACCOUNT_SID", sim.scenario.account.sid)
    monkeypatch.setenv("EXOTEL_BASE_URL", sim.base_url)
    settings = ExotelSettings()
    texts += [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    client = CCMClient.from_settings(settings, clock=sim.clock, max_retries=4, backoff_base=0.001)
    texts += [repr(client), str(vars(client)), repr(client._http.auth), repr(client._http.headers)]
    async with client:
        for i in range(12):
            try:
                placed = await client.make_call(call(f"agent-{i % 10 + 1:03d}", f"+9199531234{i:02d}"))
                await client.get_call_details(placed.call_sid)
            except E.CCMError as exc:
                keep(exc)
        try:
            await client.get_call_details("missing")
        except E.CCMError as exc:
            keep(exc)
    wrong = CCMClient(base_url=sim.base_url, api_key=KEY, api_token=TOKEN + "x",
                      account_sid=sim.scenario.account.sid)
    async with wrong:
        with pytest.raises(E.AuthenticationError) as info:
            await wrong.make_call(call())
        keep(info.value)
    dead = CCMClient(base_url="http://127.0.0.1:9", api_key=KEY, api_token=TOKEN, account_sid="s",
                     max_retries=0)
    async with dead:
        with pytest.raises(E.ConnectError) as cinfo:
            await dead.get_call_details("x")
        keep(cinfo.value)
    with pytest.raises(E.InvalidRequestError) as vinfo:
        CCMClient(base_url="http://x", api_key=KEY, api_token="", account_sid="s")
    keep(vinfo.value)

    kinds = {type(e).__name__ for e in []}
    assert len(texts) > 10, kinds
    blob = "\n".join(texts) + "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    blob += caplog.text
    encoded = base64.b64encode(f"{KEY}:{TOKEN}".encode()).decode()
    for secret in (KEY, TOKEN, encoded, encoded[:16]):
        assert secret not in blob
    # The scenario did exercise retries and failures, so the check above saw them.
    assert any("retry" in r.getMessage() for r in caplog.records)
    assert any(isinstance(x, str) and "HTTP 401/1010" in x for x in texts)


def test_request_headers_repr_hides_authorization() -> None:
    client = CCMClient(base_url="http://x", api_key=KEY, api_token=TOKEN, account_sid="s")
    request = client._http.build_request("GET", "/v2/accounts/s/calls/x")
    flow = client._http.auth.sync_auth_flow(request)  # type: ignore[union-attr]
    authed = next(flow)
    assert "Basic" in authed.headers["authorization"]
    assert TOKEN not in repr(authed.headers) and KEY not in repr(authed)
    assert isinstance(authed, httpx.Request)
