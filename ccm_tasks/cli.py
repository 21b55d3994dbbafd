"""The ``ccm`` command. Thin: it parses arguments and calls the library (or a flow)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from ccm_tasks.redact import install_log_redaction

if TYPE_CHECKING:
    from ccm_tasks.ledger import Ledger

Handler = Callable[[argparse.Namespace], int]


def _cmd_simulator(args: argparse.Namespace) -> int:
    from ccm_tasks.clock import Clock
    from ccm_tasks.simulator.scenario import Scenario
    from ccm_tasks.simulator.server import clock_spec, serve_forever

    scenario = Scenario.from_file(args.scenario) if args.scenario else Scenario.builtin("default")
    if args.time_scale is not None:
        scenario = scenario.model_copy(update={"time_scale": args.time_scale})
    acc = scenario.account

    def ready(url: str, clock: Clock) -> None:
        print(f"CCM simulator listening on {url} (time scale {scenario.time_scale:g}x)")
        spec = clock_spec(clock)
        share = f" CCM_SIM_CLOCK={spec}" if spec else ""
        print(f"  export EXOTEL_BASE_URL={url} EXOTEL_ACCOUNT_SID={acc.sid} "
              f"EXOTEL_API_KEY={acc.api_key} EXOTEL_API_TOKEN=<account.api_token in the scenario>{share}")
        print(f"  dial log: {url}/_sim/dial-log   counters: {url}/_sim/stats   (Ctrl-C to stop)")
        sys.stdout.flush()

    try:
        serve_forever(scenario, args.host, args.port, on_ready=ready)
    except KeyboardInterrupt:
        pass
    return 0


def _cmd_call(args: argparse.Namespace) -> int:
    from ccm_tasks.demo import run_one_call

    return asyncio.run(run_one_call(agent=args.agent, customer=args.customer,
                                    virtual_number=args.virtual_number, record=args.record))


def _cmd_run(args: argparse.Namespace) -> int:
    from ccm_tasks.launch import leave, run_command
    from ccm_tasks.logs import configure_logging

    configure_logging(with_prefect=not args.no_prefect)
    return leave(asyncio.run(run_command(args.campaign_file, ledger=args.ledger,
                                         wait_for_window=not args.no_wait, use_prefect=not args.no_prefect)))


def _cmd_demo(args: argparse.Namespace) -> int:
    from ccm_tasks.demo import run_demo_campaign
    from ccm_tasks.launch import leave
    from ccm_tasks.logs import configure_logging

    configure_logging(with_prefect=not args.no_prefect)
    return leave(asyncio.run(run_demo_campaign(args.campaign_file, use_prefect=not args.no_prefect)))


def _cmd_validate(args: argparse.Namespace) -> int:
    from ccm_tasks.inputs import preflight

    report = preflight(args.campaign_file, rejects_path=args.rejects)
    print(report.render())
    return 0 if report.ok else 1


def _cmd_callbacks(args: argparse.Namespace) -> int:
    from ccm_tasks.callbacks import serve_receiver
    from ccm_tasks.logs import configure_logging

    configure_logging(with_prefect=False)
    return serve_receiver(args.host, args.port, args.ledger)


def _cmd_report(args: argparse.Namespace) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from ccm_tasks import reports

    ledger = _existing_ledger(args.ledger, "ccm report")
    if ledger is None:
        return 2
    try:
        if args.report == "campaign":
            try:
                campaign = reports.build_campaign_report(ledger, args.name, run_date=args.date)
            except reports.UnknownCampaign as exc:
                print(f"ccm report: {exc}", file=sys.stderr)
                return 2
            paths = reports.write_campaign_report(campaign)
        else:
            try:
                zone = ZoneInfo(args.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                print(f"ccm report: unknown time zone {args.timezone!r}", file=sys.stderr)
                return 2
            day = args.date or datetime.now(zone).date()
            paths = reports.write_daily_report(reports.build_daily_report(ledger, day, args.timezone))
    finally:
        ledger.close()
    for path in paths:
        print(path)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ccm_tasks.logs import configure_logging

    configure_logging()
    if not _prefect_server_named("serve"):
        return 2
    from prefect import serve

    from ccm_tasks.defaults import HEARTBEAT_SECONDS
    from flows.automations import apply_automations
    from flows.schedules import all_deployments

    deployments = asyncio.run(all_deployments(args.campaigns, args.ledger, daily=not args.no_daily,
                                              daily_cron=args.daily_cron,
                                              daily_timezone=args.daily_timezone))
    if not deployments:
        print(f"ccm serve: nothing to serve: no campaign under {args.campaigns} has a schedule",
              file=sys.stderr)
        return 2
    # The flow runs this process starts inherit it: their heartbeats let the server tell a run
    # whose process was killed (flows.automations).
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    if not args.no_automations:
        print(asyncio.run(apply_automations(args.zombie_after)))
    for d in deployments:
        print(f"serving {d.flow_name}/{d.name}: {d.schedules[0].schedule if d.schedules else 'no schedule'}")
    serve(*deployments)
    return 0


def _cmd_automations(args: argparse.Namespace) -> int:
    if not _prefect_server_named("automations"):
        return 2
    from flows.automations import apply_automations

    print(asyncio.run(apply_automations(args.zombie_after)))
    return 0


def _prefect_server_named(command: str) -> bool:
    """Whether PREFECT_API_URL names a server; says what to do when it does not."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    print(f"ccm {command}: this needs a Prefect server (the temporary one has no scheduler and no "
          "automations).\n"
          "  prefect server start            # in another terminal\n"
          "  export PREFECT_API_URL=http://127.0.0.1:4200/api\n"
          f"then run `ccm {command}` again.", file=sys.stderr)
    return False


def _cmd_agents(args: argparse.Namespace) -> int:
    ledger = _existing_ledger(args.ledger, "ccm agents")
    if ledger is None:
        return 2
    try:
        return _agents(args, ledger)
    finally:
        ledger.close()


def _agents(args: argparse.Namespace, ledger: Ledger) -> int:
    import time

    if args.action == "release":
        if not args.reason:
            print("ccm agents release: say why with --reason (it is recorded)", file=sys.stderr)
            return 2
        released = ledger.force_release(args.agent, time.time(), args.reason)
        print(f"released {args.agent}" if released else f"{args.agent} holds no lease")
        return 0 if released else 1
    leases = ledger.leases()
    if not leases:
        print("no agent is leased")
    for lease in leases:
        what = ("quarantined (Make Call outcome unknown)" if lease["quarantine_until"]
                else f"on call {lease['call_sid']}" if lease["call_sid"] else "placing a call")
        holder = "running" if lease["holder_alive"] else "holder gone"
        print(f"{lease['agent_key']:24} {what}; attempt {lease['attempt_id']}; {holder}")
    return 0


def _operator() -> str:
    """Who is acting, for the record: the login name, else the user id."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return f"uid {os.getuid()}"


def _cmd_control(args: argparse.Namespace) -> int:
    from ccm_tasks import control

    ledger = _existing_ledger(args.ledger, f"ccm {args.command}")
    if ledger is None:
        return 2
    action = {"pause": control.pause, "resume": control.resume, "stop": control.stop}[args.command]
    try:
        change = action(ledger, args.name, by=args.by or _operator(), reason=args.reason or "")
    except (control.CampaignNotFound, control.ControlRefused) as exc:
        print(f"ccm {args.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    print(f"{change.campaign}: {change.message}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ccm_tasks import control

    ledger = _existing_ledger(args.ledger, "ccm status")
    if ledger is None:
        return 2
    try:
        print(control.render_status(control.status(ledger, args.name)))
    except control.CampaignNotFound as exc:
        print(f"ccm status: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    return 0


def _cmd_unknown(args: argparse.Namespace) -> int:
    from ccm_tasks import control

    ledger = _existing_ledger(args.ledger, "ccm unknown")
    if ledger is None:
        return 2
    try:
        calls = control.unknown_calls(ledger, args.name)
    except control.CampaignNotFound as exc:
        print(f"ccm unknown: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    if not calls:
        print(f"{args.name}: no customer's outcome is unknown")
    for call in calls:
        print(call.line())
    if calls:
        print(f"{len(calls)} customers. Confirm with the agents (or Exotel's call logs) which were "
              "never rung, "
              f"then: ccm requeue {args.name} --unknown --numbers ... --reason \"...\"")
    return 0


def _cmd_requeue(args: argparse.Namespace) -> int:
    from ccm_tasks import control

    if not args.unknown or not args.reason:
        print("ccm requeue: give --unknown and say why with --reason (it is recorded)", file=sys.stderr)
        return 2
    ledger = _existing_ledger(args.ledger, "ccm requeue")
    if ledger is None:
        return 2
    try:
        done = control.requeue_unknown(ledger, args.name, by=args.by or _operator(), reason=args.reason,
                                       numbers=args.numbers)
    except control.CampaignNotFound as exc:
        print(f"ccm requeue: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    print(f"{args.name}: {len(done)} customers back in the queue")
    return 0


def _cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from ccm_tasks.console import create_app
    from ccm_tasks.ledger import Ledger
    from ccm_tasks.logs import configure_logging
    from ccm_tasks.paths import resolve_ledger
    from ccm_tasks.settings import ConsoleSettings

    configure_logging(with_prefect=False)
    settings = ConsoleSettings()
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    ledger = Ledger(resolve_ledger(args.ledger))
    app = create_app(settings, ledger=ledger)
    if not ledger_has_users(ledger):
        print("ccm console: no user can sign in yet; add one first:\n"
              "  ccm users add NAME --role admin", file=sys.stderr)
    print(f"ccm console on http://{host}:{port}/ (ledger {ledger!r}); Ctrl-C to stop")
    sys.stdout.flush()
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=True, proxy_headers=True,
                server_header=False)
    return 0


def ledger_has_users(ledger: Ledger) -> bool:
    """Whether anyone can sign in to the console."""
    from ccm_tasks.ledger.users import Users

    return any(u.active for u in Users(ledger).all())


def _cmd_users(args: argparse.Namespace) -> int:
    from ccm_tasks.ledger import Ledger
    from ccm_tasks.ledger.users import UserError, Users
    from ccm_tasks.paths import resolve_ledger

    ledger = Ledger(resolve_ledger(args.ledger))
    users = Users(ledger)
    try:
        if args.action == "list":
            everyone = users.all()
            if not everyone:
                print("no users; add one with: ccm users add NAME --role admin")
            for u in everyone:
                print(f"{u.name:24} {u.role:9} {'active' if u.active else 'disabled'}")
            return 0
        if not args.name:
            print(f"ccm users {args.action}: give the user's NAME", file=sys.stderr)
            return 2
        if args.action == "add":
            password = _read_password(args.password_stdin)
            if password is None:
                return 2
            user = users.add(args.name, args.role, password)
            print(f"added {user.name} ({user.role})")
        elif args.action == "disable":
            users.disable(args.name)
            print(f"disabled {args.name} (their sessions ended)")
        elif args.action == "enable":
            users.enable(args.name)
            print(f"enabled {args.name}")
        elif args.action == "password":
            password = _read_password(args.password_stdin)
            if password is None:
                return 2
            users.set_password(args.name, password)
            print(f"changed the password of {args.name} (their sessions ended)")
        elif args.action == "role":
            print(f"{args.name} is now {users.set_role(args.name, args.role).role}")
    except UserError as exc:
        print(f"ccm users: {exc}", file=sys.stderr)
        return 2
    finally:
        ledger.close()
    return 0


def _read_password(from_stdin: bool) -> str | None:
    import getpass

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        print("ccm users: the passwords differ", file=sys.stderr)
        return None
    return first


def _existing_ledger(location: str | None, command: str) -> Ledger | None:
    """The ledger at ``location`` (default: $CCM_HOME/var/ledger.sqlite), or None after saying it
    is missing: reading commands never create an empty one."""
    from ccm_tasks.ledger import Ledger
    from ccm_tasks.paths import ledger_exists, resolve_ledger

    location = resolve_ledger(location)
    if not ledger_exists(location):
        print(f"{command}: no ledger at {location}", file=sys.stderr)
        return None
    return Ledger(location)


def _add_ledger_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger",
                        help="ledger path or URL (default: $CCM_LEDGER, else $CCM_HOME/var/ledger.sqlite)")


def _add_zombie_option(parser: argparse.ArgumentParser) -> None:
    from ccm_tasks.defaults import HEARTBEAT_SECONDS, ZOMBIE_AFTER_SECONDS

    parser.add_argument("--zombie-after", type=float, default=ZOMBIE_AFTER_SECONDS, metavar="SECONDS",
                        help="mark a run Crashed after this long without a heartbeat "
                             f"(default {ZOMBIE_AFTER_SECONDS:g}; heartbeats every {HEARTBEAT_SECONDS} s)")


_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # add_subparsers()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="ccm", description="Outbound call campaigns on Exotel CCM.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_campaign_commands(sub)
    _add_service_commands(sub)
    _add_operations_commands(sub)
    _add_report_commands(sub)
    return parser


def _add_campaign_commands(sub: _Commands) -> None:
    """Trying, checking and running campaigns: simulator, call, run, demo, validate."""
    p = sub.add_parser("simulator", help="run the local CCM simulator (real HTTP on loopback)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--scenario", type=Path, help="scenario YAML/JSON (default: the built-in one)")
    p.add_argument("--time-scale", type=float, help="simulated seconds per real second")
    p.set_defaults(handler=_cmd_simulator)

    p = sub.add_parser("call", help="place one call and follow it to terminal "
                                    "(simulated unless EXOTEL_* credentials are set)")
    p.add_argument("--agent", help="agent user_id (or E.164/SIP contact uri)")
    p.add_argument("--customer", help="customer number in E.164")
    p.add_argument("--virtual-number", help="ExoPhone to call from")
    p.add_argument("--record", action="store_true", help="record the conversation")
    p.set_defaults(handler=_cmd_call)

    p = sub.add_parser("run", help="run a campaign (simulated unless EXOTEL_* credentials are set)")
    p.add_argument("campaign_file", metavar="CAMPAIGN_FILE", type=Path, help="campaign YAML")
    _add_ledger_option(p)
    p.add_argument("--no-wait", action="store_true",
                   help="exit at once if the calling window is closed instead of waiting for it")
    p.add_argument("--no-prefect", action="store_true",
                   help="run the library directly, without a Prefect flow run")
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("demo", help="run the demo campaign on the built-in simulator, from scratch")
    p.add_argument("campaign_file", nargs="?", default=Path("campaigns/demo/demo.yaml"), type=Path)
    p.add_argument("--no-prefect", action="store_true", help="without a Prefect flow run")
    p.set_defaults(handler=_cmd_demo)

    p = sub.add_parser("validate", help="check a campaign's definition and files without dialling; "
                                        "writes the rejects file")
    p.add_argument("campaign_file", metavar="CAMPAIGN_FILE", type=Path, help="campaign YAML")
    p.add_argument("--rejects", type=Path, metavar="PATH",
                   help="where to write the rejects CSV (default: <name>-rejects.csv next to it)")
    p.set_defaults(handler=_cmd_validate)


def _add_service_commands(sub: _Commands) -> None:
    """Long-running services: serve, automations, callbacks, console, users."""
    from ccm_tasks.defaults import DAILY_CRON, DAILY_TIMEZONE

    p = sub.add_parser("serve", help="serve scheduled campaigns and the daily report (needs Prefect server)")
    p.add_argument("--campaigns", type=Path, default=Path("campaigns"), help="folder of definitions")
    _add_ledger_option(p)
    p.add_argument("--daily-cron", default=DAILY_CRON, help=f"when the daily report runs ({DAILY_CRON})")
    p.add_argument("--daily-timezone", default=DAILY_TIMEZONE)
    p.add_argument("--no-daily", action="store_true", help="do not serve the daily report")
    _add_zombie_option(p)
    p.add_argument("--no-automations", action="store_true",
                   help="do not create or update the Prefect automations (see `ccm automations`)")
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("automations", help="create or update the Prefect automations the deployments "
                                           "rely on (done by `ccm serve` too; run once for workers)")
    _add_zombie_option(p)
    p.set_defaults(handler=_cmd_automations)

    p = sub.add_parser("callbacks", help="receive Exotel status callbacks for every campaign in the ledger")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8780)
    _add_ledger_option(p)
    p.set_defaults(handler=_cmd_callbacks)

    p = sub.add_parser("console", help="serve the operations console (web pages: upload, launch, watch, "
                                       "control, reports)")
    p.add_argument("--host", help="listen address (default $CCM_CONSOLE_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default $CCM_CONSOLE_PORT or 8000)")
    _add_ledger_option(p)
    p.set_defaults(handler=_cmd_console)

    p = sub.add_parser("users", help="console users: add, list, disable, enable, password, role")
    p.add_argument("action", choices=["add", "list", "disable", "enable", "password", "role"])
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--role", choices=["operator", "manager", "admin"], default="manager",
                   help="manager reads; operator uploads, launches and controls; admin manages users")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input (for scripts)")
    _add_ledger_option(p)
    p.set_defaults(handler=_cmd_users)


def _add_operations_commands(sub: _Commands) -> None:
    """Acting on running campaigns: agents, pause/resume/stop, status, unknown, requeue."""
    p = sub.add_parser("agents", help="show agent leases; release one whose call was confirmed by hand")
    p.add_argument("action", nargs="?", choices=["list", "release"], default="list")
    p.add_argument("agent", nargs="?", help="agent key (user_id or contact uri) to release")
    p.add_argument("--reason", help="why the lease is released (recorded in the ledger's events)")
    _add_ledger_option(p)
    p.set_defaults(handler=_cmd_agents)

    for name, text in (("pause", "hold new calls (live calls finish); resume later"),
                       ("resume", "lift a pause: dialling restarts where it was"),
                       ("stop", "end the run once its live calls are over (a later run continues)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("name", metavar="NAME", help="campaign name")
        p.add_argument("--reason", help="why (recorded with your name and the time)")
        p.add_argument("--by", help="who is acting (default: your login name)")
        _add_ledger_option(p)
        p.set_defaults(handler=_cmd_control)

    p = sub.add_parser("status", help="every campaign's state, progress, live calls, agents and budget")
    p.add_argument("name", metavar="NAME", nargs="?", help="one campaign")
    _add_ledger_option(p)
    p.set_defaults(handler=_cmd_status)

    p = sub.add_parser("unknown", help="customers whose last Make Call's outcome is unknown")
    p.add_argument("name", metavar="NAME", help="campaign name")
    _add_ledger_option(p)
    p.set_defaults(handler=_cmd_unknown)

    p = sub.add_parser("requeue", help="put customers a person confirmed were never rung back in the queue")
    p.add_argument("name", metavar="NAME", help="campaign name")
    p.add_argument("--unknown", action="store_true", help="the customers final as unknown (required)")
    p.add_argument("--numbers", nargs="+", metavar="E164", help="only these numbers (default: all unknown)")
    p.add_argument("--reason", help="why (recorded with your name and the time)")
    p.add_argument("--by", help="who is acting (default: your login name)")
    _add_ledger_option(p)
    p.set_defaults(handler=_cmd_requeue)


def _add_report_commands(sub: _Commands) -> None:
    """Rebuilding reports from the ledger: report campaign, report daily."""
    from ccm_tasks.defaults import DAILY_TIMEZONE

    p = sub.add_parser("report", help="rebuild reports from the ledger (campaign outcomes, daily calls)")
    kinds = p.add_subparsers(dest="report", required=True, metavar="REPORT")
    iso_date = date.fromisoformat
    r = kinds.add_parser("campaign", help="outcomes.csv and outcomes.xlsx of one campaign")
    r.add_argument("name", metavar="NAME", help="campaign name")
    r.add_argument("--date", type=iso_date, metavar="YYYY-MM-DD",
                   help="report folder date (default: the latest run's start, in the campaign's zone)")
    _add_ledger_option(r)
    r.set_defaults(handler=_cmd_report)
    r = kinds.add_parser("daily", help="calls that ended on one date, across campaigns")
    r.add_argument("--date", type=iso_date, metavar="YYYY-MM-DD", help="default: today in --timezone")
    r.add_argument("--timezone", default=DAILY_TIMEZONE,
                   help=f"IANA zone of the day (default {DAILY_TIMEZONE})")
    _add_ledger_option(r)
    r.set_defaults(handler=_cmd_report)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ccm`` console script."""
    args = build_parser().parse_args(argv)
    install_log_redaction()
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
