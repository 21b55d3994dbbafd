"""Fixtures of the report tests: a temporary ledger, and reports written under the test's folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from report_ledgers import LedgerBuilder


@pytest.fixture
def builder(tmp_path: Path) -> Iterator[LedgerBuilder]:
    """An empty ledger in a temporary folder."""
    b = LedgerBuilder(tmp_path / "ledger.sqlite")
    yield b
    b.ledger.close()


@pytest.fixture(autouse=True)
def _reports_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports go under the test's folder, never the checkout's."""
    monkeypatch.setenv("CCM_REPORTS", str(tmp_path / "reports"))
