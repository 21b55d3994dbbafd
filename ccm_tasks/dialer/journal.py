"""The send journal: which Make Calls this process began to send, so a crash is judged exactly.

The attempt row is committed (and fsynced) before its Make Call. If the process dies right after,
did the POST leave? Without more, nobody knows, and the customer would be final as ``unknown``.
So when the request's headers start to go out on a connection (the client's send hook: after the
pool handed one out and after any connect), its attempt id is appended to a file of this holder's
(one ``write`` call, no fsync: microseconds). A later run that finds an attempt
still ``created`` by a dead holder of this machine, in this boot, reads the journal:

* id absent: the request was provably never sent; the attempt is ``rejected`` (not sent), the
  customer goes back to the queue, the agent is free;
* id present: it may have reached the server; the attempt is ``unknown`` (invariant 3).

The file survives the death of the process (the kernel keeps written data), not a power cut; a
journal from before a reboot, or from another machine, is not trusted and such attempts are
``unknown``. The connection is corked (ccm_tasks.exotel.wire): headers and body leave in one
socket write, and nothing between the journal write and that write waits, so the window left is a
few microseconds of straight-line code (before, the headers and the body were two writes with a
turn of the event loop between them, and a process killed there had journalled a request whose
body never left).
"""

from __future__ import annotations

import os
from pathlib import Path


class SendJournal:
    """An append-only list of attempt ids whose Make Call was started, one file per holder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def started(self, attempt_id: int) -> None:
        """The Make Call of this attempt is being sent now."""
        os.write(self._fd, b"%d\n" % attempt_id)

    def close(self, *, remove: bool = False) -> None:
        """Close the file (``remove``: the run ended cleanly, nothing in it matters any more)."""
        os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)

    @staticmethod
    def read(path: Path) -> set[int]:
        """The attempt ids a journal lists (a torn last line is ignored: it was never complete)."""
        data = path.read_bytes()
        lines = data.split(b"\n")
        if data and not data.endswith(b"\n"):
            lines = lines[:-1]
        return {int(x) for x in lines if x.strip().isdigit()}
