"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl on a free loopback port.

The binaries come from Debian's packages (``/usr/lib/postgresql/<version>/bin``, not on PATH).
initdb refuses to run as root, so as root the cluster belongs to an unprivileged user (the
``postgres`` user the package created, else ``ccmtest``, created here). Durability is off
(``fsync=off``): these databases die with the test session. Each test gets a database of its own.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) to run the cluster as someone who is not root."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "ccmtest"):
        try:
            user = pwd.getpwnam(name)
            break
        except KeyError:
            if name == "ccmtest":
                subprocess.run(["useradd", "--system", "--no-create-home", "ccmtest"], check=True,
                               capture_output=True)
                user = pwd.getpwnam(name)
    return ["runuser", "-u", user.pw_name, "--"], user.pw_uid, user.pw_gid


@dataclass
class Cluster:
    """A running cluster; :meth:`database` makes a fresh database and returns its URL."""

    bin: Path
    data: Path
    port: int
    prefix: list[str]

    @property
    def admin_url(self) -> str:
        """The superuser's URL to the maintenance database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def database(self, name: str | None = None) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the cluster and remove its files."""
        subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.data.parent, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb a new cluster in a temp folder and start it on a free loopback port."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")
    prefix, uid, gid = _run_as()
    root = Path(tempfile.mkdtemp(prefix="ccm-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if uid is not None and gid is not None:
        for path in (root, sockets):
            os.chown(path, uid, gid)
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
    port = _free_port()
    options = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                    str(root / "log"), "-w", "-t", "60", "start"],
                   check=True, capture_output=True, timeout=90)
    return Cluster(bin_dir, data, port, prefix)
