"""The daily-report flow under a real (temporary) Prefect server, mailing a real SMTP server on
loopback (aiosmtpd): the mail arrives with the ledger's figures; a failed send is retried and then
fails the run visibly, after the files were written; the settings can come from a Secret block."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from tests.reports.report_ledgers import LedgerBuilder, two_campaigns
from tests.reports.smtp_server import Mailbox, smtp_server

PASSWORD = "flow-s3cret-never-logged"
DAY = "2026-11-21"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Two campaigns' calls on 20 and 21 November (IST); reports under the test's folder."""
    monkeypatch.setenv("CCM_HOME", str(tmp_path))
    monkeypatch.setenv("CCM_REPORTS", str(tmp_path / "reports"))
    for name in ("HOST", "PORT", "SECURITY", "USERNAME", "PASSWORD", "SENDER", "TO", "RETRIES",
                 "RETRY_DELAY"):
        monkeypatch.delenv(f"CCM_SMTP_{name}", raising=False)
    builder = LedgerBuilder(tmp_path / "ledger.sqlite")
    two_campaigns(builder)
    builder.ledger.close()
    yield str(builder.path)


def smtp_env(monkeypatch: pytest.MonkeyPatch, host: str, port: int, *, retries: int = 2) -> None:
    """CCM_SMTP_* for the loopback server (no TLS there), retries without delay."""
    for name, value in {"HOST": host, "PORT": str(port), "SECURITY": "none", "USERNAME": "reports",
                        "PASSWORD": PASSWORD, "SENDER": "ccm@example.com",
                        "TO": "manager@example.com,ops@example.com", "RETRIES": str(retries),
                        "RETRY_DELAY": "0"}.items():
        monkeypatch.setenv(f"CCM_SMTP_{name}", value)


async def _logs(flow_run_id: UUID) -> str:
    """The flow run's logs as the server has them (sent in batches: flushed first)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    async with get_client() as client:
        for _ in range(50):
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            if any("Finished in state" in log.message for log in logs):
                break
            await asyncio.sleep(0.1)
    return "\n".join(log.message for log in logs)


async def _artifacts(*keys: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        arts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys))))
    return "\n".join(str(a.data) for a in arts)


async def test_the_flow_mails_the_report_after_a_retry(prefect_server: None, ledger: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.daily import daily_report

    mailbox = Mailbox(fail_first=1)  # the first DATA gets "451 try again later"
    with smtp_server(mailbox, password=PASSWORD) as (host, port):
        smtp_env(monkeypatch, host, port)
        state = await daily_report(date=DAY, ledger=ledger, return_state=True)
    assert state.is_completed(), state.message
    result = await state.result()  # type: ignore[misc]
    assert result["mailed_to"] == 2 and mailbox.attempts == 2
    (mail,) = mailbox.received
    assert mail["Subject"] == "Daily calls Sat 21 Nov 2026: 6 placed, 50.0% answered"
    (attachment,) = list(mail.iter_attachments())
    xlsx = next(Path(p) for p in result["files"] if p.endswith(".xlsx"))
    assert attachment.get_filename() == xlsx.name and attachment.get_content() == xlsx.read_bytes()
    body = mail.get_body(("plain",))
    assert body is not None and "Calls placed: 6 (+1 on Fri 20 Nov" in body.get_content()
    assert state.state_details.flow_run_id is not None
    logs = await _logs(state.state_details.flow_run_id)
    artifacts = await _artifacts("daily-report", "daily-report-figures")
    assert "mailed to 2 recipient(s)" in logs and "Answer rate" in artifacts and "50.0%" in artifacts
    for text in (logs, artifacts, str(state.message), repr(result)):
        assert PASSWORD not in text and "manager@example.com" not in text  # no secret, no addresses


async def test_a_mail_that_keeps_failing_fails_the_run_after_writing_the_files(
        prefect_server: None, ledger: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.daily import daily_report

    mailbox = Mailbox(fail_first=99, fail_reply="554 5.7.1 relaying denied")
    with smtp_server(mailbox, password=PASSWORD) as (host, port):
        smtp_env(monkeypatch, host, port, retries=2)
        state = await daily_report(date=DAY, ledger=ledger, return_state=True)
    assert state.is_failed()
    assert mailbox.attempts == 3 and not mailbox.received  # one try and two retries
    message = str(state.message)
    assert "report files written" in message and "was not sent after 3 tries" in message
    assert "554 5.7.1 relaying denied" in message and PASSWORD not in message
    reports = Path(ledger).parent / "reports" / "daily"
    assert sorted(p.name for p in reports.iterdir()) == [f"{DAY}.csv", f"{DAY}.md", f"{DAY}.xlsx"]
    assert state.state_details.flow_run_id is not None
    assert PASSWORD not in await _logs(state.state_details.flow_run_id)


async def test_smtp_settings_from_a_prefect_secret_block(prefect_server: None, ledger: str) -> None:
    from prefect.blocks.system import Secret

    from flows.daily import daily_report

    mailbox = Mailbox()
    with smtp_server(mailbox, password=PASSWORD) as (host, port):
        await Secret(value={"host": host, "port": port, "security": "none", "username": "reports",
                            "password": PASSWORD, "sender": "ccm@example.com", "to": ["boss@example.com"],
                            "retries": 0}).save("ccm-smtp-test", overwrite=True)
        state = await daily_report(date=DAY, ledger=ledger, smtp_block="ccm-smtp-test",
                                   mail_to=["other@example.com"], return_state=True)
    assert state.is_completed(), state.message
    assert mailbox.logins == [("reports", PASSWORD)]
    assert mailbox.envelopes == [("ccm@example.com", ["other@example.com"])]  # mail_to wins over the block


async def test_no_recipients_no_mail(prefect_server: None, ledger: str) -> None:
    from flows.daily import daily_report

    state = await daily_report(date=DAY, ledger=ledger, return_state=True)
    assert state.is_completed() and "no recipients" in str(state.message)
    result = await state.result()  # type: ignore[misc]
    assert result["mailed_to"] == 0 and len(result["files"]) == 3
