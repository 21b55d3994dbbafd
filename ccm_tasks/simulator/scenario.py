"""The simulator's scenario file: who the agents are, how people answer, what goes wrong.

A scenario is YAML (or JSON). Every field has a default, so ``{}`` is a working scenario with one
virtual number and ten agents. Durations are *simulated* seconds; ``time_scale`` says how many
simulated seconds pass per real second (``6000`` makes a 3-minute call take 30 ms). Network latency
and callback timeouts are real seconds, because they are about sockets, not about people.
See the README ("Simulator scenarios") for a full example.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DeviceState = Literal["on", "off", "unverified", "missing"]
NumberBehaviour = Literal[
    "answers",          # always answers
    "never_answers",    # rings out (no-answer)
    "busy",             # busy signal
    "failed",           # number does not exist
    "no_dial",          # the platform never dials it (customer_no_dial)
    "agent_cancels",    # the agent hangs up while it rings (agent_canceled)
    "stuck",            # answers and hangs up, but the call never turns terminal
]

HttpMethod = Literal["POST", "GET"]
_BOTH_METHODS: tuple[HttpMethod, ...] = ("POST", "GET")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dist(_Strict):
    """A distribution of seconds. Shorthand: a number is fixed, ``[low, high]`` is uniform."""

    kind: Literal["fixed", "uniform", "exponential", "normal", "lognormal"] = "fixed"
    value: float = 0.0
    low: float = 0.0
    high: float = 0.0
    mean: float = 0.0
    sd: float = 0.0
    min: float = 0.0
    max: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return {"kind": "fixed", "value": data}
        if isinstance(data, list | tuple) and len(data) == 2:
            return {"kind": "uniform", "low": data[0], "high": data[1]}
        return data

    @model_validator(mode="after")
    def _check(self) -> Dist:
        if self.kind == "uniform" and self.high < self.low:
            raise ValueError("uniform: high must be >= low")
        if self.kind in ("exponential", "lognormal") and self.mean <= 0:
            raise ValueError(f"{self.kind}: mean must be > 0")
        return self

    def sample(self, rng: random.Random) -> float:
        """Draw one value, clipped to [min, max]."""
        if self.kind == "fixed":
            x = self.value
        elif self.kind == "uniform":
            x = rng.uniform(self.low, self.high)
        elif self.kind == "exponential":
            x = rng.expovariate(1.0 / self.mean)
        elif self.kind == "normal":
            x = rng.gauss(self.mean, self.sd)
        else:  # lognormal parameterised by its own mean and sd, not the underlying normal's
            sd = self.sd or self.mean / 2
            sigma2 = math.log(1 + (sd / self.mean) ** 2)
            x = rng.lognormvariate(math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2))
        x = max(self.min, x)
        return min(self.max, x) if self.max is not None else x


class ScenarioAgent(_Strict):
    """One agent (user) of the simulated account."""

    user_id: str
    contact_uri: str
    name: str | None = None
    device: DeviceState = "on"
    answer_probability: float | None = Field(default=None, ge=0, le=1)
    # Simulated seconds after the simulator starts during which the agent is on a manual call.
    busy_periods: list[tuple[float, float]] = Field(default_factory=list)


class AgentPool(_Strict):
    """Generate ``count`` agents: agent-001 ... with numbers counting up from ``first_number``."""

    count: int = Field(ge=0)
    user_id_prefix: str = "agent-"
    first_number: str = "+919800000001"
    device: DeviceState = "on"

    def agents(self) -> list[ScenarioAgent]:
        """The generated agents."""
        width = max(3, len(str(self.count)))
        base = int(self.first_number.lstrip("+"))
        return [
            ScenarioAgent(
                user_id=f"{self.user_id_prefix}{i:0{width}d}",
                contact_uri=f"+{base + i - 1}",
                name=f"Agent {i:0{width}d}",
                device=self.device,
            )
            for i in range(1, self.count + 1)
        ]


class Behaviour(_Strict):
    """How agents and customers behave, and how long things take (simulated seconds)."""

    agent_answer_probability: float = Field(default=0.95, ge=0, le=1)
    customer_answer_probability: float = Field(default=0.65, ge=0, le=1)
    # Of the customers who do not answer: the share that give a busy signal, and that fail.
    customer_busy_share: float = Field(default=0.2, ge=0, le=1)
    customer_failed_share: float = Field(default=0.05, ge=0, le=1)
    # Of the agents who do not answer: the share whose device is busy, and that fail.
    agent_busy_share: float = Field(default=0.15, ge=0, le=1)
    agent_failed_share: float = Field(default=0.05, ge=0, le=1)
    # How long a busy signal, and a failed leg, take before the call ends.
    agent_busy_seconds: Dist = Field(default_factory=lambda: Dist(kind="uniform", low=2, high=5))
    customer_busy_seconds: float = Field(default=3.0, ge=0)
    agent_failed_seconds: float = Field(default=1.0, ge=0)
    customer_failed_seconds: float = Field(default=2.0, ge=0)
    customer_no_dial_seconds: float = Field(default=1.0, ge=0)
    agent_cancel_probability: float = Field(default=0.02, ge=0, le=1)
    agent_no_dial_probability: float = Field(default=0.0, ge=0, le=1)
    customer_no_dial_probability: float = Field(default=0.0, ge=0, le=1)
    dial_delay_seconds: Dist = Field(default_factory=lambda: Dist(kind="fixed", value=1))
    agent_ring_seconds: Dist = Field(default_factory=lambda: Dist(kind="uniform", low=3, high=12))
    customer_ring_seconds: Dist = Field(default_factory=lambda: Dist(kind="uniform", low=5, high=25))
    talk_seconds: Dist = Field(
        default_factory=lambda: Dist(kind="lognormal", mean=170, sd=90, min=5, max=1800)
    )
    post_processing_seconds: Dist = Field(default_factory=lambda: Dist(kind="uniform", low=2, high=6))
    # Ring timeout when the request sets no attempt_time_out (the network's own, roughly).
    default_ring_timeout_seconds: float = Field(default=40, gt=0)


class Faults(_Strict):
    """Injected failures on the API paths."""

    methods: list[HttpMethod] = Field(default_factory=lambda: list(_BOTH_METHODS))
    server_error_rate: float = Field(default=0.0, ge=0, le=1)
    drop_connection_rate: float = Field(default=0.0, ge=0, le=1)
    hang_rate: float = Field(default=0.0, ge=0, le=1)
    hang_seconds: float = Field(default=30.0, ge=0, description="real seconds")
    latency_seconds: Dist = Field(default_factory=Dist, description="real seconds")


class Callbacks(_Strict):
    """How status callbacks are delivered."""

    drop_rate: float = Field(default=0.0, ge=0, le=1)
    repeat_rate: float = Field(default=0.0, ge=0, le=1)
    delay_seconds: Dist = Field(default_factory=Dist, description="simulated seconds")
    terminal_without_recordings_rate: float = Field(default=0.0, ge=0, le=1)
    max_retries: int = Field(default=2, ge=0)
    timeout_seconds: float = Field(default=15.0, gt=0, description="real seconds")


class Account(_Strict):
    """The simulated Exotel account."""

    sid: str = "sim-account"
    api_key: str = "sim-key"
    api_token: str = "sim-token"  # noqa: S105 - a simulator fixture, not a real secret
    rate_limit_per_minute: int | None = Field(default=200, gt=0)
    voip_enabled: bool = False
    recording_url_base: str = "https://recordings.simulator.invalid/"


class Scenario(_Strict):
    """Everything the simulator needs; a seeded, reproducible description of a world."""

    seed: int = 1
    time_scale: float = Field(default=1.0, gt=0)
    start_time: datetime | None = None
    account: Account = Field(default_factory=Account)
    virtual_numbers: list[str] = Field(default_factory=lambda: ["+918045680000"])
    agents: list[ScenarioAgent] = Field(default_factory=list)
    agent_pool: AgentPool | None = None
    behaviour: Behaviour = Field(default_factory=Behaviour)
    numbers: dict[str, NumberBehaviour] = Field(default_factory=dict)
    faults: Faults = Field(default_factory=Faults)
    callbacks: Callbacks = Field(default_factory=Callbacks)

    @field_validator("start_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("start_time needs a UTC offset, e.g. 2026-01-05T10:00:00+05:30")
        return value

    @model_validator(mode="after")
    def _default_agents(self) -> Scenario:
        if not self.agents and self.agent_pool is None:
            self.agent_pool = AgentPool(count=10)
        ids = [a.user_id for a in self.all_agents()]
        if len(ids) != len(set(ids)):
            raise ValueError("agents: user_id values must be unique")
        return self

    def all_agents(self) -> list[ScenarioAgent]:
        """Listed agents followed by generated ones."""
        return list(self.agents) + (self.agent_pool.agents() if self.agent_pool else [])

    @classmethod
    def from_file(cls, path: str | Path) -> Scenario:
        """Load a YAML or JSON scenario; errors name the file and the key."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        return cls.model_validate(data or {})

    @classmethod
    def builtin(cls, name: str = "default") -> Scenario:
        """A scenario shipped with the package (``simulator/scenarios/<name>.yaml``)."""
        return cls.from_file(Path(__file__).with_name("scenarios") / f"{name}.yaml")
