"""Settings read from the environment, in one place.

``EXOTEL_API_KEY``, ``EXOTEL_API_TOKEN`` and ``EXOTEL_ACCOUNT_SID`` identify the account;
``EXOTEL_REGION`` picks the cluster; ``EXOTEL_BASE_URL`` overrides the region (the simulator or any
stand-in server). The key and token are :class:`~pydantic.SecretStr`: they print as ``**********``.
``CCM_SMTP_*`` say where the daily report is mailed (:class:`SmtpSettings`), the password a secret too.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REGION_BASE_URLS: dict[str, str] = {
    "singapore": "https://ccm-api.exotel.com",
    "mumbai": "https://ccm-api.in.exotel.com",
}

Region = Literal["singapore", "mumbai"]


class ExotelSettings(BaseSettings):
    """Where and as whom to call the CCM API."""

    model_config = SettingsConfigDict(env_prefix="EXOTEL_", extra="ignore", frozen=True)

    api_key: SecretStr | None = None
    api_token: SecretStr | None = None
    account_sid: str | None = None
    region: Region = "singapore"
    base_url: str | None = Field(
        default=None, description="Overrides the region, e.g. http://127.0.0.1:8765"
    )
    # The account's API limit (Exotel: 200 requests per minute for voice APIs), shared by every
    # process and machine dialling on the account through one ledger.
    requests_per_minute: int = Field(default=200, gt=0)

    @field_validator("region", mode="before")
    @classmethod
    def _lower_region(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("api_key", "api_token", "account_sid", "base_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("EXOTEL_BASE_URL must be an http(s) URL such as http://127.0.0.1:8765")
        if parts.username or parts.password:
            # Credentials in URLs end up in logs and proxies; they go in the Basic header instead.
            raise ValueError(
                "EXOTEL_BASE_URL must not contain credentials; "
                "set EXOTEL_API_KEY and EXOTEL_API_TOKEN instead"
            )
        return value.rstrip("/")

    @property
    def resolved_base_url(self) -> str:
        """The API root: EXOTEL_BASE_URL if set, else the region's cluster."""
        return self.base_url or REGION_BASE_URLS[self.region]

    @property
    def has_credentials(self) -> bool:
        """True when key, token and account sid are all set (real dialling is possible)."""
        return bool(self.api_key and self.api_token and self.account_sid)

    def missing(self) -> list[str]:
        """Names of the environment variables still needed to dial for real."""
        names = {"api_key": self.api_key, "api_token": self.api_token, "account_sid": self.account_sid}
        return [f"EXOTEL_{k.upper()}" for k, v in names.items() if not v]


class SimSettings(BaseSettings):
    """The built-in simulator, used when no Exotel credentials are set (``CCM_SIM_*``).

    ``CCM_SIM_CLOCK`` makes a process share the clock of a time-scaled simulator it talks to at
    ``EXOTEL_BASE_URL`` (``ccm simulator`` prints the value to export): nothing is ever sent to
    the API to find out (invariant 7).
    """

    model_config = SettingsConfigDict(env_prefix="CCM_SIM_", extra="ignore", frozen=True)

    scenario: str | None = Field(default=None, description="a scenario YAML to start from")
    time_scale: float | None = Field(default=None, gt=0, description="simulated seconds per real second")
    clock: str | None = Field(default=None, description='"<scale>@<wall0>[@<sim0>]" of a stand-in simulator')

    @field_validator("scenario", "clock", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("clock")
    @classmethod
    def _check_clock(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.strip().split("@")
        try:
            ok = len(parts) in (2, 3) and float(parts[0]) > 0 and all(float(p) > 0 for p in parts[1:])
        except ValueError:
            ok = False
        if not ok:
            raise ValueError('CCM_SIM_CLOCK must be "<scale>@<wall epoch>[@<simulated epoch>]", as '
                             '`ccm simulator` prints it, e.g. "600@1767225600.5"')
        return value.strip()


class PathSettings(BaseSettings):
    """Where the product keeps its files (``CCM_HOME``, ``CCM_LEDGER``, ``CCM_REPORTS``)."""

    model_config = SettingsConfigDict(env_prefix="CCM_", extra="ignore", frozen=True)

    home: str | None = Field(default=None, description="holds var/ledger.sqlite and reports/ (default: cwd)")
    ledger: str | None = Field(default=None, description="a SQLite path or a database URL")
    reports: str | None = None

    @field_validator("home", "ledger", "reports", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class ConsoleSettings(BaseSettings):
    """The operations console (``ccm console``): listen address, session secret, upload limits.

    Read from ``CCM_CONSOLE_*``. When ``CCM_CONSOLE_SECRET`` is not set, a secret is generated once
    and kept in the ledger (``ledger_meta``), so a restart, or a second console sharing the ledger,
    does not sign everyone out.
    """

    model_config = SettingsConfigDict(env_prefix="CCM_CONSOLE_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    secret: SecretStr | None = None
    # The whole upload form (every file in it together), in MiB.
    max_upload_mb: float = Field(default=32, gt=0)
    # Data rows across a campaign's customer files (every sheet).
    max_rows: int = Field(default=500_000, gt=0)
    # A workbook (a zip inside) whose parts expand past this many MiB is refused unread.
    max_workbook_expanded_mb: float = Field(default=512, gt=0)
    session_hours: float = Field(default=12, gt=0)
    # Secure-flag the cookies: None = when the request came over https (directly or via a proxy
    # that says so with X-Forwarded-Proto and is trusted by uvicorn's --forwarded-allow-ips).
    https: bool | None = None
    login_attempts: int = Field(default=5, ge=1)  # failed sign-ins per name (and per address) ...
    login_window_seconds: float = Field(default=300, gt=0)  # ... within this many seconds
    # Where the console writes campaign folders (default: $CCM_HOME/campaigns).
    campaigns_dir: str | None = None
    # A definition whose settings (window, retry, call, dialer...) new campaigns start from
    # (default: campaigns/example.yaml when it exists, else the built-in defaults).
    template: str | None = None
    # Embedded launches run `ccm run` with its Prefect flow (False: `ccm run --no-prefect`).
    run_with_prefect: bool = True
    # How long a launch waits for the run to take the campaign's lock before answering the page.
    launch_wait_seconds: float = Field(default=20, gt=0)

    @field_validator("secret", "campaigns_dir", "template", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value


SmtpSecurity = Literal["starttls", "ssl", "none"]
_SMTP_PORTS: dict[str, int] = {"starttls": 587, "ssl": 465, "none": 25}


class SmtpSettings(BaseSettings):
    """Where the daily report is mailed from and to (``CCM_SMTP_*``); the password a secret.

    ``CCM_SMTP_HOST``, ``_PORT`` (default by ``_SECURITY``: 587 starttls, 465 ssl, 25 none),
    ``_USERNAME``, ``_PASSWORD``, ``_SENDER`` (the From address), ``_TO`` (recipients, comma-separated),
    ``_TIMEOUT`` (seconds per connection), ``_RETRIES`` and ``_RETRY_DELAY`` (seconds) for a failed
    send. The same fields can come from a Prefect Secret block instead (``flows.daily``).
    """

    model_config = SettingsConfigDict(env_prefix="CCM_SMTP_", extra="ignore", frozen=True)

    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: SmtpSecurity = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str | None = None
    to: Annotated[tuple[str, ...], NoDecode] = ()
    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=0, le=20)
    retry_delay: float = Field(default=30.0, ge=0)

    @field_validator("host", "username", "password", "sender", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("to", mode="before")
    @classmethod
    def _split_recipients(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("sender", "to")
    @classmethod
    def _check_addresses(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        for address in (value,) if isinstance(value, str) else value or ():
            # A line break would start a new mail header (header injection).
            if "@" not in address or any(c in address for c in "\r\n,;"):
                raise ValueError(f"not a mail address: {address!r}")
        return value

    @property
    def resolved_port(self) -> int:
        """The port: CCM_SMTP_PORT, else the usual one for the security."""
        return self.port or _SMTP_PORTS[self.security]

    @property
    def configured(self) -> bool:
        """True when there is somewhere to send the mail and someone to send it to."""
        return bool(self.host and self.sender and self.to)

    def missing(self) -> list[str]:
        """Names of the environment variables still needed to send mail."""
        names = {"host": self.host, "sender": self.sender, "to": self.to}
        return [f"CCM_SMTP_{k.upper()}" for k, v in names.items() if not v]
