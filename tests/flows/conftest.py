"""One Prefect test server for the whole session (it takes ~10-20 s to start)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server with a throwaway database."""
    from ccm_tasks.logs import quiet_prefect_env

    quiet_prefect_env()
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
