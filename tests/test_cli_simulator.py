"""`ccm simulator` serves real HTTP in its own process; `ccm demo` prints a call's lifecycle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ccm_tasks.exotel.client import CCMClient
from ccm_tasks.exotel.models import MakeCallRequest

CCM = [sys.executable, "-m", "ccm_tasks.cli"]


async def test_simulator_command(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("seed: 2\naccount: {sid: acme, api_key: k1, api_token: t1}\n"
                        "agent_pool: {count: 2}\n")
    args = [*CCM, "simulator", "--port", "0", "--scenario", str(scenario), "--time-scale", "1000"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: ASYNC220
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first, first + (proc.stderr.read() if proc.poll() else "")
        url = first.split("listening on ")[1].split()[0]
        second = proc.stdout.readline()
        assert "t1" not in second and "EXOTEL_BASE_URL=" + url in second
        async with CCMClient(base_url=url, api_key="k1", api_token="t1", account_sid="acme") as client:
            placed = await client.make_call(MakeCallRequest.model_validate({
                "from": {"user_id": "agent-002"}, "to": {"customer_contact_uri": "+919953123456"},
                "virtual_number": "+918045680000"}))
            assert placed.call_state == "active"
    finally:
        proc.terminate()
        proc.wait(10)


def test_call_prints_the_lifecycle() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXOTEL_")}
    out = subprocess.run([*CCM, "call"], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "SIMULATED" in text
    for step in ("placed call", "agent leg: in-progress", "customer leg: in-progress",
                 "call_status: completed", "call_state: terminal"):
        assert step in text, text
    assert text.index("agent leg: in-progress") < text.index("customer leg: in-progress")
    assert "9953123456" not in text  # the customer's number is masked
    assert "Traceback" not in out.stderr
