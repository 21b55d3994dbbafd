"""A realistic small ledger for the print checks and the manual's pictures: two campaigns, a dozen
agents, a working day of calls (and the day before, and the same weekday a week before), every
outcome, wrap-up after answered calls, a run that was interrupted."""

from __future__ import annotations

import random
import tempfile
from datetime import date
from pathlib import Path

from report_ledgers import LedgerBuilder, ist

DAY = date(2026, 11, 21)
STATUSES = (("completed", 45), ("customer_unanswered", 30), ("agent_unanswered", 8), ("customer_no_dial", 7),
            ("agent_canceled", 5), ("agent_no_dial", 5))
NAMES = ("Asha Rao", "Bilal Khan", "Chitra Iyer", "Dev Malhotra", "Esha Nair", "Farhan Ali", "Gita Bose",
         "Hari Menon", "Isha Gupta", "Jai Verma", "Kavya Shetty", "Leela Das")


def build_demo(builder: LedgerBuilder, *, seed: int = 11) -> None:
    """Fill ``builder``'s ledger (see the module docstring)."""
    rng = random.Random(seed)
    statuses, weights = zip(*STATUSES, strict=True)
    agents = [(f"agent-{i + 1:02d}", name) for i, name in enumerate(NAMES)]
    plans = (("loan-reminders-nov", 260, agents[:8], 0), ("kyc-followup", 120, agents[7:], 1))
    for name, size, team, offset in plans:
        phones = [f"+91987{offset}{i:05d}" for i in range(size)]
        cid, run = builder.campaign(name, phones, at=ist("2026-11-14 09:00:00"),
                                    input_summary={"rows_read": size + 9, "valid": size, "rejected": 5,
                                                   "duplicates": 3, "suppressed": 1, "agents": len(team),
                                                   "agents_rejected": 0})
        days = (("2026-11-14", 0.25), ("2026-11-20", 0.35), ("2026-11-21", 0.35))
        queue = list(phones)
        rng.shuffle(queue)
        attempt_no: dict[str, int] = {}
        for i, (day, share) in enumerate(days):
            if i:
                run = builder.start_run(cid, ist(f"{day} 09:00:00"))
            clock = {key: ist(f"{day} 09:30:00") + rng.uniform(0, 900) for key, _ in team}
            names = dict(team)
            for _ in range(int(size * share)):
                key = min(clock, key=lambda k: clock[k])
                if not queue or clock[key] > ist(f"{day} 18:45:00"):
                    break
                phone = queue.pop()
                status = rng.choices(statuses, weights)[0]
                n = attempt_no[phone] = attempt_no.get(phone, 0) + 1
                duration = rng.randint(120, 420) if status == "completed" else rng.randint(20, 60)
                talk = rng.randint(60, duration - 30) if status == "completed" else 0
                final = status == "completed" or n >= 2 or rng.random() < 0.3
                attempt = builder.call(cid, run, phone, key, at=clock[key], status=status, talk=talk,
                                       duration=duration, customer_state="done" if final else "pending",
                                       attempt_no=n, customer_attempts=n, agent_name=names[key])
                wrap = rng.randint(30, 90) if status == "completed" else 0
                if wrap:
                    builder.wrap_up(attempt, wrap)
                if not final:
                    queue.insert(0, phone)
                # Agents also take inbound calls and breaks: calls spread over the day, busier late
                # morning and late afternoon.
                hour = (clock[key] - ist(f"{day} 00:00:00")) / 3600
                busy = 1.0 if 10.5 <= hour < 13 or 15.5 <= hour < 18 else 0.45
                clock[key] += duration + 8 + wrap + rng.expovariate(busy / 1500)
            if i < len(days) - 1:
                builder.finish_run(run, ist(f"{day} 19:30:00"), "window_closed", "the calling window closed")
        # The last day's run was killed: a later one noticed (interrupted, no end recorded).
        builder.rejected(cid, run, queue[-1], team[0][0], at=ist("2026-11-21 18:50:00"),
                         agent_name=team[0][1])
        builder.mark_run(run, "interrupted")


def demo_ledger(folder: Path) -> LedgerBuilder:
    """A new demo ledger in ``folder``."""
    builder = LedgerBuilder(folder / "demo.sqlite")
    build_demo(builder)
    return builder


def render_docs(docs: Path) -> list[Path]:
    """Render the demo's campaign Summary and daily Summary with LibreOffice into PNGs in ``docs``."""
    from libreoffice import convert, page_png

    from ccm_tasks.reports import (
        build_campaign_report,
        build_daily_report,
        write_campaign_report,
        write_daily_report,
    )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        builder = demo_ledger(folder)
        campaign = build_campaign_report(builder.ledger, "loan-reminders-nov", now=ist("2026-11-21 20:00:00"))
        _, workbook = write_campaign_report(campaign, folder / "campaign")
        daily_book = write_daily_report(build_daily_report(builder.ledger, DAY), folder / "daily")[0]
        out = []
        pictures = ((workbook, "report-campaign-summary.png"), (daily_book, "report-daily-summary.png"))
        for source, name in pictures:
            pdf = convert(source, folder / "pdf")
            out.append(page_png(pdf, 1, docs / name, dpi=100))
        builder.ledger.close()
    return out
