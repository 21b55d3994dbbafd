"""Live progress of a run: a bar on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ccm.progress")

Snapshot = Callable[[], dict[str, Any]]


def describe(snap: dict[str, Any]) -> str:
    """One line: customers, live calls, agents, outcomes."""
    agents = snap["agents"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(snap["outcomes"].items(), key=lambda kv: -kv[1]))
    return (f"{snap['done']}/{snap['total']} final | {snap['live_calls']} live | agents "
            f"{agents['busy']} busy, {agents['idle']} idle, {agents['paused']} paused"
            + (f", {agents['dropped']} dropped" if agents.get("dropped") else "")
            + (f" | {outcomes}" if outcomes else ""))


async def show_progress(snapshot: Snapshot, *, tty: bool | None = None, every: float = 10.0) -> None:
    """Until cancelled: a rich progress bar if stdout is a terminal, else a log line every ``every``s."""
    tty = sys.stdout.isatty() if tty is None else tty
    if not tty:
        while True:
            await asyncio.sleep(every)
            log.info("progress: %s", describe(snapshot()))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[detail]}"), transient=False) as bar:
        snap = snapshot()
        task = bar.add_task(snap["campaign"], total=snap["total"], detail="")
        while True:
            snap = snapshot()
            detail = describe(snap).partition(" | ")[2]
            bar.update(task, completed=snap["done"], total=snap["total"], detail=detail)
            await asyncio.sleep(0.5)
