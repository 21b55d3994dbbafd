"""The flows' tests use the session's Prefect test server (``prefect_server`` in tests/conftest.py);
what needs Prefect's scheduler, a runner or automations uses ``real_prefect``: a real
``prefect server start`` for the session (tests/flows/prefect_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.flows.prefect_server import PrefectServer, start_prefect_server
from tests.support import needs


@pytest.fixture(scope="session")
def real_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` (SQLite, its own PREFECT_HOME, a free loopback port), shared by the
    session's tests; ~12 s to start here."""
    try:
        server = start_prefect_server(tmp_path_factory.mktemp("prefect-server"))
    except (OSError, RuntimeError) as exc:
        pytest.skip(needs("prefect-server", str(exc)[-1500:]))
    yield server
    server.stop()
