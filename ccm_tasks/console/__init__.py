"""The operations console: a web app for operations staff and managers (``ccm console``).

Sign in; create a campaign from spreadsheets; see what will be called; launch or schedule it;
watch and control it; read and download its reports. Server-rendered pages (FastAPI + Jinja2),
htmx (vendored) only for the live figures; the pages call the library, never the ledger's SQL.
See docs/console.md.
"""

from ccm_tasks.console.app import create_app

__all__ = ["create_app"]
