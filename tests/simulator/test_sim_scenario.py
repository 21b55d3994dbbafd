"""Scenario files: shorthand, defaults, errors that name the key."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from ccm_tasks.simulator.scenario import Dist, Scenario


def test_empty_scenario_is_usable() -> None:
    sc = Scenario.model_validate({})
    assert len(sc.all_agents()) == 10 and sc.account.rate_limit_per_minute == 200
    assert sc.all_agents()[0].user_id == "agent-001"
    assert sc.all_agents()[0].contact_uri == "+919800000001"


def test_builtin_default_loads() -> None:
    sc = Scenario.builtin("default")
    assert sc.time_scale == 60 and sc.virtual_numbers == ["+918045680000"]


def test_dist_shorthand_and_sampling() -> None:
    rng = random.Random(1)
    assert Dist.model_validate(5).sample(rng) == 5
    uniform = Dist.model_validate([2, 4])
    assert all(2 <= uniform.sample(rng) <= 4 for _ in range(100))
    logn = Dist.model_validate({"kind": "lognormal", "mean": 180, "sd": 60, "min": 5, "max": 900})
    xs = [logn.sample(rng) for _ in range(5000)]
    assert 165 < sum(xs) / len(xs) < 195 and min(xs) >= 5 and max(xs) <= 900


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("""
seed: 4
time_scale: 6000
agents:
  - {user_id: a1, contact_uri: "+919800000001", device: "off"}
  - {user_id: a2, contact_uri: "sip:a2@pbx.example.com", busy_periods: [[0, 30]]}
numbers: {"+919953123456": busy}
faults: {server_error_rate: 0.1, latency_seconds: [0.001, 0.002]}
callbacks: {drop_rate: 0.3, repeat_rate: 0.1}
""")
    sc = Scenario.from_file(path)
    assert [a.device for a in sc.all_agents()] == ["off", "on"]
    assert sc.numbers["+919953123456"] == "busy" and sc.callbacks.drop_rate == 0.3


@pytest.mark.parametrize(("data", "where"), [
    ({"behaviour": {"customer_answer_probability": 1.5}}, "customer_answer_probability"),
    ({"numbers": {"+9199": "sometimes"}}, "numbers"),
    ({"agents": [{"user_id": "a", "contact_uri": "+1"}, {"user_id": "a", "contact_uri": "+2"}]},
     "unique"),
    ({"time_scale": 0}, "time_scale"),
    ({"typo_key": 1}, "typo_key"),
    ({"start_time": "2026-01-01T10:00:00"}, "start_time"),
])
def test_bad_scenarios_name_the_key(data: dict, where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        Scenario.model_validate(data)
