"""``ccm run`` as users run it: a real child process, real files, real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ccm_tasks.simulator.scenario import Scenario
from ccm_tasks.simulator.server import SimulatorServer
from tests.dialer.campaign_files import ccm_env, write_campaign

AGENTS = [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(1, 4)]
NUMBERS = [f"+9199{i:08d}" for i in range(12)]


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXOTEL_", "CCM_", "PREFECT_"))}
    env.update({"CCM_HOME": str(tmp), "PREFECT_HOME": str(tmp / ".prefect"), **extra})
    return env


def ccm(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccm_tasks.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_run_without_credentials_is_simulated_and_says_so(tmp_path: Path) -> None:
    definition = write_campaign(tmp_path / "c", "tiny", agents=AGENTS, numbers=NUMBERS)
    out = ccm("run", "--no-prefect", str(definition), env=clean_env(tmp_path, CCM_SIM_TIME_SCALE="2000"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Calls are SIMULATED" in out.stdout and "every customer has a final outcome" in out.stdout
    assert (tmp_path / "var" / "ledger.sqlite").exists()
    # The run ends by writing the campaign report, and says where it is.
    (xlsx,) = (tmp_path / "reports" / "tiny").glob("*/outcomes.xlsx")
    assert f"report: {xlsx}" in out.stdout and xlsx.with_suffix(".csv").exists()
    from openpyxl import load_workbook

    book = load_workbook(xlsx, read_only=True)
    assert {"Outcomes", "Attempts", "Summary", "Agents"} <= set(book.sheetnames)
    assert "Traceback" not in out.stderr
    for number in NUMBERS:  # phone numbers never appear unmasked in what the command prints
        assert number not in out.stdout + out.stderr


def test_a_campaign_that_cannot_run_exits_2_with_one_clear_message(tmp_path: Path) -> None:
    definition = tmp_path / "broken.yaml"
    definition.write_text("name: broken\ncustomers: {files: [{path: nowhere.csv}]}\nagents: a.csv\n"
                          "virtual_number: '+918045680000'\nretry: {backof: linear}\n")
    out = ccm("run", "--no-prefect", str(definition), env=clean_env(tmp_path))
    assert out.returncode == 2
    assert "retry.backof" in out.stdout and "broken.yaml" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_bad_credentials_stop_the_campaign_with_exit_1(tmp_path: Path) -> None:
    with SimulatorServer(Scenario.model_validate({"time_scale": 1000, "agents": [
            {"user_id": u, "contact_uri": c} for u, c in AGENTS]})) as sim:
        env = {**clean_env(tmp_path), **ccm_env(sim, tmp_path / "l.sqlite", tmp_path / "r"),
               "EXOTEL_API_TOKEN": "wrong-token"}
        definition = write_campaign(tmp_path / "c", "tiny", agents=AGENTS, numbers=NUMBERS)
        out = ccm("run", "--no-prefect", str(definition), env=env)
        assert sim.dial_log() == []
    assert out.returncode == 1
    assert "1010" in out.stdout and "fatal" in out.stdout
    assert "wrong-token" not in out.stdout + out.stderr


def test_run_through_prefect_is_quiet_and_starts_calling_at_once(tmp_path: Path) -> None:
    """The real command with Prefect's temporary server: calls start within seconds, the flow
    attaches later and follows the run, and nothing prints a traceback or a telemetry error."""
    scale = 4  # slow enough (~25 s) for Prefect's temporary server to come up while calls go on
    with SimulatorServer(Scenario.model_validate({"time_scale": scale, "agents": [
            {"user_id": u, "contact_uri": c} for u, c in AGENTS],
            "behaviour": {"talk_seconds": [20, 60], "agent_answer_probability": 1.0,
                          "customer_answer_probability": 1.0}})) as sim:
        env = {**clean_env(tmp_path), **ccm_env(sim, tmp_path / "l.sqlite", tmp_path / "r")}
        definition = write_campaign(tmp_path / "c", "tiny", agents=AGENTS, numbers=NUMBERS[:6])
        sim_t0, real_t0 = sim.clock.time(), time.time()
        out = ccm("run", str(definition), env=env, timeout=300)
        log = sim.dial_log()
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Traceback" not in text and "elemetry" not in text and "ERROR" not in text
    assert "Flow run" in text and "Finished in state Completed" in text
    first_call_real = real_t0 + (min(r["created"] for r in log) - sim_t0) / scale
    startup = first_call_real - real_t0
    print(f"first call {startup:.1f}s after `ccm run` started")
    assert startup < 8.0


def test_a_run_that_ends_before_prefect_is_up_does_not_wait_for_it(tmp_path: Path) -> None:
    with SimulatorServer(Scenario.model_validate({"time_scale": 300, "agents": [
            {"user_id": u, "contact_uri": c} for u, c in AGENTS]})) as sim:
        env = {**clean_env(tmp_path), **ccm_env(sim, tmp_path / "l.sqlite", tmp_path / "r"),
               "EXOTEL_API_TOKEN": "wrong-token"}  # fatal at the first Make Call
        definition = write_campaign(tmp_path / "c", "tiny", agents=AGENTS, numbers=NUMBERS)
        started = time.time()
        out = ccm("run", str(definition), env=env)
        took = time.time() - started
    assert out.returncode == 1 and "1010" in out.stdout
    assert "EXOTEL_API_KEY" in out.stdout and "EXOTEL_API_TOKEN" in out.stdout  # names what to check
    assert "Traceback" not in out.stdout + out.stderr
    assert took < 8.0, f"{took:.1f}s: the command waited for Prefect"


def test_serve_without_a_prefect_server_explains_what_to_do(tmp_path: Path) -> None:
    out = ccm("serve", "--campaigns", str(tmp_path), env=clean_env(tmp_path))
    assert out.returncode == 2
    assert "prefect server start" in out.stderr and "PREFECT_API_URL" in out.stderr
    assert "Traceback" not in out.stderr


def _running(definition: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ccm_tasks.cli", "run", *extra, str(definition)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_ctrl_c_stop_at_once_with_a_summary_and_the_run_recorded_interrupted(tmp_path: Path) -> None:
    import signal

    from ccm_tasks.ledger import Ledger

    world = {"time_scale": 5, "behaviour": {"talk_seconds": [60, 90]},
             "agents": [{"user_id": u, "contact_uri": c} for u, c in AGENTS]}
    with SimulatorServer(Scenario.model_validate(world)) as sim:
        env = {**clean_env(tmp_path), **ccm_env(sim, tmp_path / "l.sqlite", tmp_path / "r")}
        definition = write_campaign(tmp_path / "c", "signals", agents=AGENTS, numbers=NUMBERS)
        proc = _running(definition, env, "--no-prefect")
        for _ in range(100):
            time.sleep(0.1)
            if sim.dial_log():
                break
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    assert "Campaign signals: interrupted" in out and "left for a later run" in out
    ledger = Ledger(tmp_path / "l.sqlite")
    assert ledger.runs(ledger.campaign_id("signals") or 0)[0]["status"] == "interrupted"


def test_sigterm_drains_and_ends_cancelled_without_waiting_for_prefect(tmp_path: Path) -> None:
    import signal

    from ccm_tasks.ledger import Ledger

    world = {"time_scale": 20, "behaviour": {"talk_seconds": [60, 90]},
             "agents": [{"user_id": u, "contact_uri": c} for u, c in AGENTS]}
    with SimulatorServer(Scenario.model_validate(world)) as sim:
        env = {**clean_env(tmp_path), **ccm_env(sim, tmp_path / "l.sqlite", tmp_path / "r")}
        definition = write_campaign(tmp_path / "c", "term", agents=AGENTS, numbers=NUMBERS)
        proc = _running(definition, env)  # with Prefect: its temporary server is still starting
        for _ in range(100):
            time.sleep(0.1)
            if sim.dial_log():
                break
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - sent
        signalled_at = sim.clock.time() - (time.monotonic() - sent) * 20
        after = [r for r in sim.dial_log() if r["created"] > signalled_at + 1]
    assert proc.returncode == 0, out
    assert took < 25, f"{took:.1f}s from SIGTERM to exit"  # live calls drain; Prefect is not waited for
    assert "Campaign term: cancelled" in out and "Traceback" not in out
    assert after == [], "a Make Call after SIGTERM"
    ledger = Ledger(tmp_path / "l.sqlite")
    assert ledger.runs(ledger.campaign_id("term") or 0)[0]["status"] == "cancelled"
    assert ledger.count("agent_leases") == 0 or all(
        lease["available_at"] is not None for lease in ledger.leases())  # only wrap-ups remain


def test_the_summary_counts_requests_sent_and_names_agents_unavailable_all_run(tmp_path: Path) -> None:
    """"API requests sent" is what reached the server (the simulator's own count of Make Calls
    received, refused ones included), not budget grants; an agent whose device is off for the whole
    run is named, with the reason, in the printed summary and in summary.json."""
    scenario = Scenario.model_validate({"time_scale": 1000, "agents": [
        {"user_id": u, "contact_uri": c, **({"device": "off"} if u == "agent-003" else {})}
        for u, c in AGENTS]})
    with SimulatorServer(scenario) as sim:
        definition = write_campaign(tmp_path / "c", "sent", agents=AGENTS, numbers=NUMBERS)
        env = ccm_env(sim, tmp_path / "ledger.sqlite", tmp_path / "reports")
        out = ccm("run", "--no-prefect", str(definition), env=env)
        received = sim.received_make_calls()
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"API requests sent: {len(received)} Make Call" in out.stdout, out.stdout
    (summary_path,) = (tmp_path / "reports" / "sent").glob("*/summary.json")
    import json

    summary = json.loads(summary_path.read_text())
    assert summary["requests"]["post_sent"] == len(received)
    assert list(summary["unavailable_agents"]) == ["agent-003"], out.stdout
    reason = summary["unavailable_agents"]["agent-003"]
    assert reason and f"agent-003 ({reason})" in out.stdout, out.stdout
    # The headline figures, in the glossary's words, match the ledger.
    from sqlalchemy import func, select

    from ccm_tasks.ledger import Ledger
    from ccm_tasks.ledger import schema as t

    ledger = Ledger(tmp_path / "ledger.sqlite")
    a = t.attempts.c
    with ledger.read() as conn:
        placed = conn.execute(select(func.count())
                              .where(a.state.in_(["placed", "terminal", "unknown"]))).scalar()
        answered = conn.execute(select(func.count()).where(a.call_status == "completed")).scalar()
        talk = conn.execute(select(func.sum(a.total_talk_time))).scalar()
    ledger.close()
    figures = summary["figures"]
    assert figures["calls_placed"]["value"] == placed and figures["talk_time"]["value"] == talk
    assert figures["answer_rate"]["value"] == answered / placed
    assert figures["answer_rate"]["label"] == "Answer rate"
    assert [Path(f).name for f in summary["files"]] == ["outcomes.csv", "outcomes.xlsx"]
    assert figures["reach_rate"]["value"] == 1.0 and figures["talk_time"]["unit"] == "seconds"


def test_unknown_outcomes_are_listed_and_only_the_requeued_one_is_dialled_again(tmp_path: Path,
                                                                                ledger_url: str) -> None:
    """Two customers final as unknown (a run died around their Make Calls): ``ccm unknown`` lists
    both; ``ccm requeue --unknown --numbers`` puts back the one a person confirmed never rang, with
    who and why; the next ``ccm run`` dials that number and no other, and the other stays unknown."""
    from ccm_tasks.ledger import Ledger
    from ccm_tasks.ledger.campaigns import CustomerUpdate

    numbers = NUMBERS[:2]
    definition = write_campaign(tmp_path / "c", "settle", agents=AGENTS, numbers=numbers)
    ledger = Ledger(ledger_url)
    at = time.time() - 3600
    cid = ledger.upsert_campaign("settle", definition_path=str(definition), timezone="Asia/Kolkata", now=at)
    ledger.sync_customers(cid, [{"customer_key": n, "phone": n} for n in numbers], at)
    holder = ledger.register_holder("the run that died")
    run_id = ledger.start_run(cid, holder, at)
    for i, row in enumerate(ledger.customer_rows(cid)):
        agent = AGENTS[i][0]
        claim = ledger.claim(agent_key=agent, agent_name=None, holder_id=holder, campaign_id=cid,
                             run_id=run_id, customer_id=row.id, attempt_no=1, now=at + i)
        assert claim.ok and claim.attempt_id is not None
        final = CustomerUpdate(state="done", final_status="unknown", last_status="unknown", attempts=1,
                               agent_side_retries=0, no_dial_retries=0, next_attempt_at=None)
        ledger.mark_unknown(claim.attempt_id, agent_key=agent, customer_id=row.id, message="read timeout",
                            customer=final, quarantine_until=at + 600, now=at + 30)
        ledger.release_lease(agent, holder)
    ledger.finish_run(run_id, "interrupted", "killed", {}, at + 60)
    ledger.close()

    with SimulatorServer(Scenario.model_validate({"time_scale": 1000, "agents": [
            {"user_id": u, "contact_uri": c} for u, c in AGENTS]})) as sim:
        env = ccm_env(sim, ledger_url, tmp_path / "reports")
        listed = ccm("unknown", "settle", env=env)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "2 customers" in listed.stdout and "ccm requeue settle --unknown" in listed.stdout
        # --unknown and --reason are required: nothing is requeued by accident.
        assert ccm("requeue", "settle", "--numbers", numbers[1], env=env).returncode == 2
        back = ccm("requeue", "settle", "--unknown", "--numbers", numbers[1],
                   "--reason", "agent says it never rang", "--by", "asha", env=env)
        assert back.returncode == 0, back.stdout + back.stderr
        assert "1 customers back in the queue" in back.stdout
        assert "1 customers" in ccm("unknown", "settle", env=env).stdout
        rerun = ccm("run", "--no-prefect", str(definition), env=env)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        dialled = [r["customer"] for r in sim.dial_log()]
    assert dialled == [numbers[1]]
    ledger = Ledger(ledger_url)
    finals = {r.customer_key: r.final_status for r in ledger.customer_rows(cid)}
    (event,) = ledger.events(cid, kinds=["requeue_unknown"])
    ledger.close()
    assert finals[numbers[0]] == "unknown" and finals[numbers[1]] == "completed"
    assert event["data"]["by"] == "asha" and event["data"]["reason"] == "agent says it never rang"
