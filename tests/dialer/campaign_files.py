"""Write small campaigns (definition + spreadsheets) for tests that run the real ``ccm run``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ccm_tasks.simulator.server import SimulatorServer, clock_spec


def write_campaign(folder: Path, name: str, *, agents: list[tuple[str, str]], numbers: list[str],
                   **definition: Any) -> Path:
    """A campaign folder with agents.csv, customers.csv and <name>.yaml; returns the YAML path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agents.csv").write_text("user_id,contact_uri,name\n" + "".join(
        f"{uid},{uri},{uid.title()}\n" for uid, uri in agents))
    (folder / "customers.csv").write_text("Name,Mobile\n" + "".join(
        f"Customer {i},{n}\n" for i, n in enumerate(numbers)))
    data: dict[str, Any] = {
        "name": name, "customers": {"files": [{"path": "customers.csv"}]}, "agents": "agents.csv",
        "virtual_number": "+918045680000",
        "window": {"start": "00:00", "end": "23:59"},
        "retry": {"max_attempts": 3, "interval_minutes": 1},
        "dialer": {"agent_cooldown_seconds": 10, "agent_recheck_seconds": 30, "stuck_grace_seconds": 60},
        "call": {"max_time_limit": 120, "attempt_time_out": 30},
    }
    for key, value in definition.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def ccm_env(sim: SimulatorServer, ledger: Path | str, reports: Path) -> dict[str, str]:
    """Environment for a ``ccm run`` child dialling ``sim`` (sharing its clock, explicitly, as
    ``ccm simulator`` tells one to) and sharing ``ledger``."""
    settings = sim.client_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXOTEL_", "CCM_", "PREFECT_"))}
    env.update({
        "EXOTEL_BASE_URL": settings["base_url"], "EXOTEL_API_KEY": settings["api_key"],
        "EXOTEL_API_TOKEN": settings["api_token"], "EXOTEL_ACCOUNT_SID": settings["account_sid"],
        "CCM_LEDGER": str(ledger), "CCM_REPORTS": str(reports), "PYTHONUNBUFFERED": "1",
        "CCM_HOME": str(reports.parent),
    })
    spec = clock_spec(sim.clock)
    if spec:
        env["CCM_SIM_CLOCK"] = spec
    return env


def start_run(definition: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``ccm run --no-prefect`` in a child process (output to ``log``)."""
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "ccm_tasks.cli", "run", "--no-prefect", str(definition)],
                            env=env, stdout=out, stderr=subprocess.STDOUT)
