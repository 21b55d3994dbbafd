"""Live progress of a run: a bar on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

from ccm_tasks.dialer.progress import Progress

log = logging.getLogger("ccm.progress")


async def show_progress(snapshot: Callable[[], Progress], *, tty: bool | None = None,
                        every: float = 10.0) -> None:
    """Until cancelled: a rich progress bar if stdout is a terminal, else a log line every ``every``s."""
    tty = sys.stdout.isatty() if tty is None else tty
    if not tty:
        while True:
            await asyncio.sleep(every)
            log.info("progress: %s", snapshot().line())
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
             TimeElapsedColumn(), TextColumn("{task.fields[detail]}"), transient=False) as bar:
        snap = snapshot()
        task = bar.add_task(snap.campaign, total=snap.total, detail="")
        while True:
            snap = snapshot()
            bar.update(task, completed=snap.done, total=snap.total, detail=snap.line().partition(" | ")[2])
            await asyncio.sleep(0.5)
