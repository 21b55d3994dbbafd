"""The daily report mail, sent to a real SMTP server on loopback (aiosmtpd): it arrives, parses, has
the workbook and the chart, its figures match the ledger, and the password shows nowhere."""

from __future__ import annotations

import io
import smtplib
from datetime import date
from email.message import EmailMessage

import openpyxl
import pytest
from report_ledgers import LedgerBuilder
from smtp_server import Mailbox, free_port, smtp_server

from ccm_tasks.reports import build_daily_report, write_daily_report
from ccm_tasks.reports.mail import MailNotSent, daily_report_message, send_message
from ccm_tasks.reports.tables import day_bounds, hms
from ccm_tasks.settings import SmtpSettings

# aiosmtpd warns on every connection that AUTH without TLS is unsafe: on loopback, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
DAY2 = date(2026, 11, 21)
PASSWORD = "s3cret-Pa55-not-for-logs"
TO = ("manager@example.com", "ops@example.com")


def ledger_figures(builder: LedgerBuilder, day: date) -> tuple[int, int, int]:
    """Calls placed, answered and talk time counted on ``day``, straight from the attempts table."""
    start, end = day_bounds(day, "Asia/Kolkata")
    with builder.ledger.read() as conn:
        row = conn.exec_driver_sql(
            "SELECT COUNT(*), SUM(call_status = 'completed'), SUM(COALESCE(total_talk_time, 0)) "
            "FROM attempts "
            "WHERE (state = 'terminal' AND COALESCE(end_time, terminal_at) >= ? AND COALESCE(end_time, "
            "terminal_at) < ?) OR (state = 'unknown' AND created_at >= ? AND created_at < ?)",
            (start, end, start, end)).one()
    return int(row[0]), int(row[1]), int(row[2])


def settings_for(host: str, port: int, **overrides: object) -> SmtpSettings:
    """Settings for the loopback server (no TLS there: aiosmtpd has no certificate)."""
    values: dict[str, object] = {"host": host, "port": port, "security": "none", "username": "reports",
                                 "password": PASSWORD, "sender": "ccm-reports@example.com", "to": TO,
                                 "timeout": 10, **overrides}
    return SmtpSettings.model_validate(values)


def test_the_mail_arrives_with_the_workbook_and_the_ledgers_figures(two_campaigns: LedgerBuilder) -> None:
    report = build_daily_report(two_campaigns.ledger, DAY2)
    xlsx = write_daily_report(report)[0]
    mailbox = Mailbox()
    with smtp_server(mailbox, password=PASSWORD) as (host, port):
        settings = settings_for(host, port)
        message = daily_report_message(report, xlsx, sender=str(settings.sender), to=settings.to)
        send_message(message, settings)
    assert mailbox.logins == [("reports", PASSWORD)]  # the secret was used to log in...
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)  # ...and prints as ****
    (mail,) = mailbox.received
    assert mailbox.envelopes == [("ccm-reports@example.com", list(TO))]
    assert PASSWORD.encode() not in mail.as_bytes()
    assert mail["Subject"] == "Daily calls Sat 21 Nov 2026: 6 placed, 50.0% answered"
    assert mail["To"] == ", ".join(TO)

    placed, answered, talk = ledger_figures(two_campaigns, DAY2)
    text = mail.get_body(("plain",))
    assert text is not None
    plain = text.get_content()
    assert f"Calls placed: {placed} (+1 on Fri 20 Nov, +{placed} on Sat 14 Nov)" in plain
    assert f"Calls answered: {answered} " in plain and f"Talk time: {hms(talk)} " in plain
    html_part = mail.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert f'text-align:right;">{placed}</td>' in html and f">{hms(talk)}</td>" in html
    assert "Answer rate" in html and "per call, not per customer" in html  # the glossary's definition

    images = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1
    png = images[0].get_content()
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")
    assert f'src="cid:{images[0]["Content-ID"].strip("<>")}"' in html  # shown inline, not attached
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_filename() == "2026-11-21.xlsx"
    data = attachment.get_content()
    assert data == xlsx.read_bytes()
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames[0] == "Summary" and book["Summary"]["A1"].value == report.title


def test_a_day_without_calls_still_mails(builder: LedgerBuilder) -> None:
    builder.campaign("quiet", ["+919900000001"], at=0.0)
    report = build_daily_report(builder.ledger, date(2026, 12, 25))
    xlsx = write_daily_report(report)[0]
    message = daily_report_message(report, xlsx, sender="ccm@example.com", to=["m@example.com"])
    assert message["Subject"] == "Daily calls Fri 25 Dec 2026: no calls"
    assert not [p for p in message.walk() if p.get_content_type() == "image/png"]  # no chart to draw
    assert len(list(message.iter_attachments())) == 1


def test_a_refused_mail_raises_and_names_no_secret(two_campaigns: LedgerBuilder) -> None:
    report = build_daily_report(two_campaigns.ledger, DAY2)
    xlsx = write_daily_report(report)[0]
    message: EmailMessage = daily_report_message(report, xlsx, sender="ccm@example.com", to=TO)
    mailbox = Mailbox(fail_first=99, fail_reply="554 5.7.1 rejected by policy")
    with smtp_server(mailbox, password=PASSWORD) as (host, port):
        with pytest.raises(MailNotSent) as refused:
            send_message(message, settings_for(host, port))
        with pytest.raises(MailNotSent) as wrong:
            send_message(message, settings_for(host, port, password="not-the-password"))
    assert "554 5.7.1 rejected by policy" in str(refused.value) and f"{host}:{port}" in str(refused.value)
    assert "535" in str(wrong.value)  # authentication failed
    for exc in (refused.value, wrong.value):
        assert PASSWORD not in str(exc) and "not-the-password" not in str(exc)
        assert exc.__cause__ is None and exc.__suppress_context__  # no chain to carry frame locals
    with pytest.raises(MailNotSent, match="did not take the mail: ConnectionRefusedError"):
        send_message(message, settings_for("127.0.0.1", free_port()))
    assert not mailbox.received


def test_smtp_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCM_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("CCM_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("CCM_SMTP_SENDER", "ccm@example.com")
    monkeypatch.setenv("CCM_SMTP_TO", " manager@example.com, ops@example.com ,")
    settings = SmtpSettings()
    assert settings.to == TO and settings.resolved_port == 587 and settings.security == "starttls"
    assert settings.configured and settings.missing() == []
    assert PASSWORD not in repr(settings) and "**********" in repr(settings)
    assert SmtpSettings(security="ssl").resolved_port == 465
    monkeypatch.setenv("CCM_SMTP_TO", "manager@example.com\r\nBcc: everyone@example.com")
    with pytest.raises(ValueError, match="not a mail address"):
        SmtpSettings()
    monkeypatch.delenv("CCM_SMTP_TO")
    assert SmtpSettings().missing() == ["CCM_SMTP_TO"]


def test_smtplib_is_the_client() -> None:
    """The module sends with the standard library (no extra dependency, no Prefect)."""
    import ccm_tasks.reports.mail as mail

    assert mail.smtplib is smtplib
