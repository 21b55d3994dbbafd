"""The simulated CCM account: agents, calls and their lifecycle, computed from a clock.

No I/O here. A call's whole fate (who answers, how long things ring and talk) is drawn when it is
placed, from random streams seeded by the scenario seed and the customer's and agent's own call
counts, so a run is reproducible whatever order concurrent requests arrive in. What a GET shows at
time *t* is then a pure function of that fate and *t*:

    created -> start (dial delay) -> agent rings -> agent answers (or not: agent_unanswered)
            -> customer rings -> customer answers (or not: customer_unanswered) -> talk -> hang-up
            -> post-processing (call_state stays "active", call_status already set) -> terminal
"""

from __future__ import annotations

import hashlib
import random
import uuid
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ccm_tasks.clock import Clock
from ccm_tasks.exotel.models import MakeCallRequest
from ccm_tasks.simulator import errors as E
from ccm_tasks.simulator.scenario import DeviceState, Scenario, ScenarioAgent

IST = timezone(timedelta(hours=5, minutes=30))
STUCK_FOREVER = 1e9  # seconds: post-processing that never ends


def _stream(seed: int, *parts: object) -> random.Random:
    """An independent random stream for (seed, parts); stable across processes."""
    digest = hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def normalise_virtual_number(number: str) -> str:
    """ExoPhones may be given as E.164 or in Indian local format; compare them as E.164."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if number.strip().startswith("+"):
        return "+" + digits
    if digits.startswith("0"):
        digits = digits[1:]
    if len(digits) == 10:
        return "+91" + digits
    return "+" + digits


@dataclass
class SimAgent:
    """An agent and the state of its device."""

    user_id: str
    contact_uri: str
    name: str | None
    device: DeviceState
    answer_probability: float | None
    busy_periods: list[tuple[float, float]]
    calls: list[SimCall] = field(default_factory=list)

    @property
    def is_sip(self) -> bool:
        return self.contact_uri.lower().startswith(("sip:", "sips:"))

    def on_call(self, t: float) -> SimCall | None:
        """The call this agent's device is on at time t, if any (until hang-up)."""
        for call in reversed(self.calls[-4:]):
            if call.created <= t < call.ended:
                return call
        return None


@dataclass
class SimCall:
    """One call and its complete, predetermined timeline (simulated epoch seconds)."""

    call_sid: str
    agent: SimAgent
    customer: str
    virtual_number: str
    custom_field: str | None
    recording: bool
    status_callback: list[dict[str, str]]
    created: float
    start: float
    ended: float
    terminal: float
    call_status: str
    agent_answered: float | None = None
    customer_answered: float | None = None
    agent_final: str | None = None
    customer_final: str | None = None
    talk_seconds: int = 0
    recording_url: str | None = None

    def events(self) -> list[tuple[float, str]]:
        """(time, event_type) of the status callbacks this call produces, in order."""
        out: list[tuple[float, str]] = []
        if self.agent_answered is not None:
            out.append((self.agent_answered, "answered"))
        if self.customer_answered is not None:
            out.append((self.customer_answered, "answered"))
        out.append((self.terminal, "terminal"))
        return out

    def details(self, t: float, include_recordings: bool = True) -> dict[str, Any]:
        """The ``data`` block as Get Call Details would show it at time t."""
        ended = t >= self.ended
        terminal = t >= self.terminal
        agent_status: str | None = None
        if ended:
            agent_status = self.agent_final
        elif self.agent_answered is not None and t >= self.agent_answered:
            agent_status = "in-progress"
        customer_status: str | None = None
        if ended:
            customer_status = self.customer_final
        elif self.customer_answered is not None and t >= self.customer_answered:
            customer_status = "in-progress"
        moments = [m for m in (self.created, self.start, self.agent_answered,
                               self.customer_answered, self.ended, self.terminal)
                   if m is not None and m <= t]
        recordings = None
        if terminal and self.recording_url and include_recordings:
            recordings = [{"url": self.recording_url}]
        return {
            "call_sid": self.call_sid,
            "direction": "outbound",
            "virtual_number": self.virtual_number,
            "call_state": "terminal" if terminal else "active",
            "call_status": self.call_status if ended else None,
            "assigned_agent_details": {
                "user_id": self.agent.user_id,
                "user_name": self.agent.name,
                "contact_uri": self.agent.contact_uri,
                "group_id": None,
                "group_name": None,
                "status": agent_status,
            },
            "customer_details": {
                "contact_name": None,
                "contact_uri": self.customer,
                "status": customer_status,
            },
            "created_time": iso(self.created),
            "updated_time": iso(max(moments) if moments else self.created),
            "start_time": iso(self.start),
            "end_time": iso(self.ended) if ended else None,
            "total_duration": round(self.ended - self.start) if terminal else None,
            "total_talk_time": (self.talk_seconds if self.call_status == "completed" else None)
            if terminal else None,
            "custom_field": self.custom_field,
            "app_id": None,
            "app_name": None,
            "digits": None,
            "recordings": recordings,
        }

    def log_entry(self) -> dict[str, Any]:
        """A row of the dial log."""
        return {
            "call_sid": self.call_sid,
            "agent": self.agent.user_id,
            "agent_contact_uri": self.agent.contact_uri,
            "customer": self.customer,
            "virtual_number": self.virtual_number,
            "custom_field": self.custom_field,
            "created": self.created,
            "start": self.start,
            "ended": self.ended,
            "terminal": self.terminal,
            "call_status": self.call_status,
            "talk_seconds": self.talk_seconds,
            "agent_answered": self.agent_answered,  # when the agent picked up (None: never)
        }


def iso(ts: float) -> str:
    """Seconds since the epoch as ISO 8601 in IST, as the API shows times."""
    return datetime.fromtimestamp(int(ts), tz=IST).isoformat()


class SimulatedAccount:
    """The state of one simulated CCM account."""

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock
        self.started_at = clock.time()
        self.agents: dict[str, SimAgent] = {}
        self._by_contact: dict[str, SimAgent] = {}
        for a in scenario.all_agents():
            self._add_agent(a)
        self.virtual_numbers = {normalise_virtual_number(v) for v in scenario.virtual_numbers}
        self.calls: dict[str, SimCall] = {}
        self.call_order: list[SimCall] = []
        self.counters: Counter[str] = Counter()
        self.rate_limit = scenario.account.rate_limit_per_minute  # changed by the control API
        self._customer_calls: Counter[str] = Counter()
        # custom_field of every complete Make Call body received, whatever it was answered (429,
        # a refusal, a call): the witness of "may have reached the server" for crash tests.
        self.received_make_calls: list[str | None] = []
        self._request_times: list[float] = []
        self.requests_per_minute: Counter[int] = Counter()  # accepted API requests by simulated minute
        self.busiest_60s = 0  # most requests accepted in any sliding 60 s (tracked under a limit)
        self._sid_rng = _stream(scenario.seed, "sids")
        self.fault_rng = _stream(scenario.seed, "faults")
        self.callback_rng = _stream(scenario.seed, "callbacks")

    def _add_agent(self, a: ScenarioAgent) -> None:
        agent = SimAgent(a.user_id, a.contact_uri, a.name, a.device, a.answer_probability,
                         list(a.busy_periods))
        self.agents[a.user_id] = agent
        self._by_contact.setdefault(a.contact_uri, agent)  # the first agent wins, as the spec says

    # ------------------------------------------------------------------ checks

    def authenticate(self, api_key: str | None, api_token: str | None) -> None:
        """401/1010 unless the credentials are the account's."""
        acc = self.scenario.account
        if api_key != acc.api_key or api_token != acc.api_token:
            raise E.AuthenticationFailed()

    def check_account(self, sid: str) -> None:
        """400/1001 for a missing sid, 404/1017 for an unknown one."""
        if not sid:
            raise E.AccountSidMissing()
        if sid != self.scenario.account.sid:
            raise E.AccountNotFound()

    def admit(self) -> None:
        """Count one API request against the account's per-minute limit; 429 beyond it."""
        limit = self.rate_limit
        now = self.clock.time()
        if limit is None:
            self.requests_per_minute[int(now // 60)] += 1
            return
        window_start = now - 60.0
        times = self._request_times
        drop = bisect_right(times, window_start)
        if drop:
            del times[:drop]
        if len(times) >= limit:
            self.counters["rate_limited"] += 1
            raise E.RateLimited(retry_after=max(0.0, times[0] + 60.0 - now))
        times.append(now)
        self.busiest_60s = max(self.busiest_60s, len(times))
        self.requests_per_minute[int(now // 60)] += 1

    # ------------------------------------------------------------------ make call

    def find_agent(self, user_id: str | None, contact_uri: str | None) -> SimAgent:
        """The agent named by ``from``; 404/10731 if there is none."""
        agent = self.agents.get(user_id) if user_id else self._by_contact.get(contact_uri or "")
        if agent is None:
            raise E.UserNotFound()
        return agent

    def make_call(self, request: MakeCallRequest) -> SimCall:
        """Check a parsed Make Call against the account and place the call."""
        now = self.clock.time()
        vn = request.virtual_number
        if normalise_virtual_number(vn) not in self.virtual_numbers:
            raise E.VirtualNumberNotFound()
        contact = request.from_.user_contact_uri
        sip_requested = bool(contact and contact.lower().startswith(("sip:", "sips:")))
        agent = self.find_agent(request.from_.user_id, contact)
        if (sip_requested or agent.is_sip) and not self.scenario.account.voip_enabled:
            raise E.VoipNotAllowed()
        if agent.device == "missing":
            raise E.NoDevice()
        if agent.device == "off":
            raise E.DeviceUnavailable()
        if agent.device == "unverified":
            raise E.DeviceUnverified()
        if agent.on_call(now) is not None:
            self.counters["agent_busy_api"] += 1
            raise E.DeviceBusy()
        offset = now - self.started_at
        if any(lo <= offset < hi for lo, hi in agent.busy_periods):
            self.counters["agent_busy_manual"] += 1
            raise E.DeviceBusy()
        call = self._place(agent, request, now)
        self.calls[call.call_sid] = call
        self.call_order.append(call)
        agent.calls.append(call)
        self.counters["calls_placed"] += 1
        return call

    def _place(self, agent: SimAgent, request: MakeCallRequest, now: float) -> SimCall:
        """Draw the call's whole fate: the agent leg first, then (if it answered) the customer's."""
        sc = self.scenario
        customer = request.to.customer_contact_uri
        self._customer_calls[customer] += 1
        crng = _stream(sc.seed, "customer", customer, self._customer_calls[customer])
        arng = _stream(sc.seed, "agent", agent.user_id, len(agent.calls) + 1)
        timeout = float(request.attempt_time_out or sc.behaviour.default_ring_timeout_seconds)
        sid = uuid.UUID(int=self._sid_rng.getrandbits(128)).hex
        start = now + sc.behaviour.dial_delay_seconds.sample(arng)
        call = SimCall(
            call_sid=sid, agent=agent, customer=customer, virtual_number=request.virtual_number,
            custom_field=request.custom_field, recording=bool(request.recording),
            status_callback=[cb.model_dump() for cb in request.status_callback or []],
            created=now, start=start, ended=start, terminal=start, call_status="agent_no_dial",
        )
        ended = self._agent_leg(call, arng, timeout)
        if ended is None:
            ended = self._customer_leg(call, crng, arng, timeout, request.max_time_limit)
        self._finish(call, ended, arng)
        if call.call_status == "completed" and sc.numbers.get(customer) == "stuck":
            call.terminal = call.ended + STUCK_FOREVER
        return call

    def _agent_leg(self, call: SimCall, arng: random.Random, timeout: float) -> float | None:
        """The agent's phone rings: when the call ends if the agent does not answer, else None."""
        b, start = self.scenario.behaviour, call.start
        if arng.random() < b.agent_no_dial_probability:
            return start
        ring = b.agent_ring_seconds.sample(arng)
        p_answer = call.agent.answer_probability
        if p_answer is None:
            p_answer = b.agent_answer_probability
        if arng.random() >= p_answer or ring >= timeout:
            call.call_status = "agent_unanswered"
            why = arng.random()
            if why < b.agent_busy_share:
                call.agent_final = "busy"
                return start + min(timeout, b.agent_busy_seconds.sample(arng))
            if why < b.agent_busy_share + b.agent_failed_share:
                call.agent_final = "failed"
                return start + b.agent_failed_seconds
            call.agent_final = "no-answer"
            return start + timeout
        call.agent_answered, call.agent_final = start + ring, "completed"
        return None

    def _customer_leg(self, call: SimCall, crng: random.Random, arng: random.Random, timeout: float,
                      max_talk: int | None) -> float:
        """The agent answered; the customer's phone rings: when the call ends."""
        sc, b = self.scenario, self.scenario.behaviour
        behaviour = sc.numbers.get(call.customer)
        aa = call.agent_answered
        assert aa is not None
        c_ring = b.customer_ring_seconds.sample(crng)
        if behaviour == "no_dial" or (behaviour is None and crng.random() < b.customer_no_dial_probability):
            call.call_status = "customer_no_dial"
            return aa + b.customer_no_dial_seconds
        if behaviour == "agent_cancels" or (behaviour is None and arng.random() < b.agent_cancel_probability):
            call.call_status, call.customer_final = "agent_canceled", "no-answer"
            return aa + min(timeout, 1 + c_ring / 2)
        answers = behaviour in ("answers", "stuck") or (
            behaviour is None and crng.random() < b.customer_answer_probability)
        if answers and c_ring < timeout:
            call.customer_answered = aa + c_ring
            talk = b.talk_seconds.sample(crng)
            if max_talk:
                talk = min(talk, float(max_talk))
            call.talk_seconds = round(talk)
            call.call_status, call.customer_final = "completed", "completed"
            if call.recording:
                call.recording_url = f"{sc.account.recording_url_base}{call.call_sid}.mp3"
            return call.customer_answered + talk
        call.call_status = "customer_unanswered"
        why = crng.random()
        if behaviour == "busy" or (behaviour is None and why < b.customer_busy_share):
            call.customer_final = "busy"
            return aa + min(timeout, b.customer_busy_seconds)
        failed = b.customer_busy_share + b.customer_failed_share
        if behaviour == "failed" or (behaviour is None and why < failed):
            call.customer_final = "failed"
            return aa + b.customer_failed_seconds
        call.customer_final = "no-answer"
        return aa + timeout

    def _finish(self, call: SimCall, ended: float, rng: random.Random) -> SimCall:
        call.ended = max(ended, call.start)
        call.terminal = call.ended + self.scenario.behaviour.post_processing_seconds.sample(rng)
        return call

    # ------------------------------------------------------------------ reads

    def get_call(self, call_sid: str) -> SimCall:
        """A placed call; 404/3043 if unknown."""
        call = self.calls.get(call_sid)
        if call is None:
            raise E.CallNotFound()
        return call

    def set_rate_limit(self, per_minute: int | None) -> None:
        """Change the account's requests-per-minute limit (control API: an overload episode)."""
        self.rate_limit = per_minute

    def set_device(self, user_id: str, device: DeviceState) -> None:
        """Turn an agent's device on/off (control API, for tests)."""
        agent = self.agents.get(user_id)
        if agent is None:
            raise KeyError(user_id)
        agent.device = device

    def dial_log(self) -> list[dict[str, Any]]:
        """Every accepted Make Call, in the order placed."""
        return [c.log_entry() for c in self.call_order]
