"""Fixtures of the report tests: a temporary ledger, and reports written under the test's folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import report_ledgers
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


@pytest.fixture
def two_campaigns(builder: LedgerBuilder) -> LedgerBuilder:
    """Campaigns A and B over 20 and 21 November (IST) with every edge the daily report has
    (:func:`report_ledgers.two_campaigns`)."""
    return report_ledgers.two_campaigns(builder)
