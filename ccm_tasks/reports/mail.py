"""The daily report by mail: a short HTML body with the day's figures and a chart, the XLSX attached.

Sent with the standard library's SMTP client (``smtplib``), not ``prefect-email``: this module must
run without Prefect (the CLI and tests use it, and ``ccm_tasks.reports`` imports no Prefect); the
message needs an inline image (``multipart/related`` with a ``cid:`` part) beside the attachment,
which ``email.message.EmailMessage`` builds directly; and ``smtplib`` adds no dependency. The flow
(``flows.daily``) wraps :func:`send_message` in a task with retries; a Prefect Secret block can hold
the settings there instead of the environment.

Secrets: the password is a :class:`~pydantic.SecretStr` from :class:`~ccm_tasks.settings.SmtpSettings`,
read only to log in; :class:`MailNotSent` names the server, never the password. Recipients' addresses
are not logged either, only their number.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from ccm_tasks.reports.charts import Series, bar_chart_png
from ccm_tasks.reports.daily import (
    _CHANGE_KINDS,
    DailyReport,
    comparison_rows,
    headline,
)
from ccm_tasks.reports.glossary import DAILY_COUNTING, FIGURES
from ccm_tasks.reports.tables import display
from ccm_tasks.settings import SmtpSettings

XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
MAIL_CAMPAIGNS = 10
"""Campaigns listed in the mail (most calls first); all are in the attached workbook."""


class MailNotSent(RuntimeError):
    """The SMTP server refused the mail or could not be reached (the message says which server)."""


def hourly_chart(report: DailyReport) -> bytes:
    """The day's calls placed and answered by hour, as a PNG."""
    hours = report.by_hour
    labels = [str(h)[:5] for h in hours["hour"]]
    return bar_chart_png(f"Calls by hour of the day, {report.day:%a %d %b} ({report.timezone})", labels,
                         [Series("Calls placed", hours["calls_placed"].tolist()),
                          Series("Calls answered", hours["calls_answered"].tolist())])


def subject(report: DailyReport) -> str:
    """``Daily calls Sat 21 Nov 2026: 6 placed, 50.0% answered``."""
    if report.empty:
        return f"Daily calls {report.day:%a %d %b %Y}: no calls"
    rate = display(report.totals["answer_rate"].iloc[0], "percent")
    return f"Daily calls {report.day:%a %d %b %Y}: {report.calls_placed:,d} placed, {rate} answered"


def daily_report_message(report: DailyReport, workbook: Path, *, sender: str, to: Sequence[str],
                         chart: bytes | None = None) -> EmailMessage:
    """The daily report mail: plain text and HTML (figures, chart inline), the workbook attached."""
    message = EmailMessage()
    message["Subject"] = subject(report)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    message.set_content(_plain(report, workbook.name))
    chart_id = make_msgid(domain="ccm.chart")
    png = chart if chart is not None else (hourly_chart(report) if len(report.by_hour) else None)
    message.add_alternative(_html(report, workbook.name, chart_id[1:-1] if png else None), subtype="html")
    if png is not None:
        html_part = message.get_body(("html",))
        assert isinstance(html_part, EmailMessage)  # the alternative just added
        html_part.add_related(png, maintype="image", subtype="png", cid=chart_id,
                              filename=f"{report.day.isoformat()}-by-hour.png")
    message.add_attachment(workbook.read_bytes(), maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1],
                           filename=workbook.name)
    return message


def send_message(message: EmailMessage, settings: SmtpSettings) -> None:
    """Send through the configured SMTP server. Raises :class:`MailNotSent` (no secret in it)."""
    if not settings.host:
        raise MailNotSent("no SMTP server configured (CCM_SMTP_HOST)")
    where = f"{settings.host}:{settings.resolved_port}"
    context = ssl.create_default_context()
    try:
        smtp: smtplib.SMTP
        if settings.security == "ssl":
            smtp = smtplib.SMTP_SSL(settings.host, settings.resolved_port, timeout=settings.timeout,
                                    context=context)
        else:
            smtp = smtplib.SMTP(settings.host, settings.resolved_port, timeout=settings.timeout)
        with smtp:
            if settings.security == "starttls":
                smtp.starttls(context=context)
            if settings.username:
                password = settings.password.get_secret_value() if settings.password else ""
                smtp.login(settings.username, password)
            refused = smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise MailNotSent(f"the mail server {where} did not take the mail: {_describe(exc)}") from None
    if refused:
        raise MailNotSent(f"the mail server {where} refused {len(refused)} of the recipients")


def _describe(exc: BaseException) -> str:
    # smtplib's errors carry the server's code and reply; neither holds the password (it is only ever
    # sent inside AUTH). The chain is dropped (``from None``) so no frame local can leak into a log.
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        return f"{exc.smtp_code} {reply}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"all {len(exc.recipients)} recipients refused"
    return f"{type(exc).__name__}: {exc}"


def _plain(report: DailyReport, attachment: str) -> str:
    lines = [report.title, "", headline(report), ""]
    for f, _, change, _, week_change in comparison_rows(report):
        kind = _CHANGE_KINDS[f.kind]
        lines.append(f"{f.label}: {f.text} ({display(change, kind) or '-'} on "
                     f"{report.previous_day:%a %d %b}, {display(week_change, kind) or '-'} on "
                     f"{report.week_before:%a %d %b})")
    lines += ["", DAILY_COUNTING, f"The workbook is attached: {attachment}."]
    return "\n".join(lines) + "\n"


_CELL = "padding:4px 10px;border-bottom:1px solid #ddd;"
_NUM = _CELL + "text-align:right;"
_HEAD = "padding:4px 10px;border-bottom:2px solid #999;background:#eef2f7;text-align:right;"
_HEAD_LEFT = _HEAD.replace("right", "left")


def _html(report: DailyReport, attachment: str, chart_cid: str | None) -> str:
    e = html.escape
    prev, week = report.previous_day, report.week_before
    rows = []
    for f, before, change, last_week, week_change in comparison_rows(report):
        kind = _CHANGE_KINDS[f.kind]
        cells = [f.text, display(before, f.kind), display(change, kind), display(last_week, f.kind),
                 display(week_change, kind)]
        rows.append(f'<tr><td style="{_CELL}">{e(f.label)}</td>'
                    + "".join(f'<td style="{_NUM}">{e(c or "-")}</td>' for c in cells) + "</tr>")
    heads = ["Figure", f"{report.day:%a %d %b}", f"{prev:%a %d %b}", "Change", f"{week:%a %d %b}", "Change"]
    table = ('<table style="border-collapse:collapse;font-size:14px">'
             + "<tr>" + "".join(f'<th style="{_HEAD_LEFT if i == 0 else _HEAD}">{e(h)}</th>'
                                for i, h in enumerate(heads)) + "</tr>"
             + "".join(rows) + "</table>")
    parts = ['<div style="font-family:Calibri,Arial,sans-serif;color:#222">',
             f'<h2 style="margin:0 0 4px">{e(report.title)}</h2>',
             f"<p>{e(headline(report))}</p>", table]
    if chart_cid is not None:
        parts.append(f'<p><img src="cid:{e(chart_cid)}" width="720" alt="Calls placed and answered by hour '
                     f'of the day" style="max-width:100%"></p>')
    campaigns = report.by_campaign.sort_values(["calls_placed", "campaign"], ascending=[False, True])
    if len(campaigns):
        top = campaigns.head(MAIL_CAMPAIGNS)
        heads = ["Campaign", "Calls placed", f"vs {prev:%a %d %b}", "Answer rate", "Talk time"]
        body = "".join(
            f'<tr><td style="{_CELL}">{e(str(r["campaign"]))}</td>'
            f'<td style="{_NUM}">{display(r["calls_placed"], "int")}</td>'
            f'<td style="{_NUM}">{display(r["calls_placed_change"], "change")}</td>'
            f'<td style="{_NUM}">{display(r["answer_rate"], "percent") or "-"}</td>'
            f'<td style="{_NUM}">{display(r["talk_time_s"], "duration")}</td></tr>'
            for r in top.to_dict("records"))
        parts.append('<h3 style="margin:16px 0 4px">By campaign</h3>'
                     '<table style="border-collapse:collapse;font-size:14px"><tr>'
                     + "".join(f'<th style="{_HEAD_LEFT if i == 0 else _HEAD}">{e(h)}</th>'
                               for i, h in enumerate(heads)) + "</tr>" + body + "</table>")
        if len(campaigns) > len(top):
            parts.append(f"<p>{len(campaigns)} campaigns in all: see the workbook.</p>")
    definitions = "".join(f"<li><b>{e(FIGURES[n].label)}</b>: {e(FIGURES[n].definition)}</li>"
                          for n in ("calls_placed", "calls_answered", "answer_rate", "talk_time",
                                    "average_talk_time"))
    parts += [f'<p style="color:#555;font-size:12px">{e(DAILY_COUNTING)}</p>',
              f'<ul style="color:#555;font-size:12px">{definitions}</ul>',
              f"<p>The workbook is attached: <b>{e(attachment)}</b> (by campaign, agent, hour and "
              "outcome).</p></div>"]
    return "\n".join(parts)
