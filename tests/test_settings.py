"""Settings from the environment, in one place."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ccm_tasks.settings import ExotelSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API_KEY", "API_TOKEN", "ACCOUNT_SID", "REGION", "BASE_URL"):
        monkeypatch.delenv(f"EXOTEL_{name}", raising=False)


def test_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ExotelSettings().resolved_base_url == "https://ccm-api.exotel.com"
    monkeypatch.setenv("EXOTEL_REGION", "Mumbai")
    assert ExotelSettings().resolved_base_url == "https://ccm-api.in.exotel.com"
    monkeypatch.setenv("EXOTEL_BASE_URL", "http://127.0.0.1:8765/")
    assert ExotelSettings().resolved_base_url == "http://127.0.0.1:8765"


def test_unknown_region_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOTEL_REGION", "mars")
    with pytest.raises(ValidationError, match="region"):
        ExotelSettings()


def test_credentials_in_the_base_url_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOTEL_BASE_URL", "https://key:token@ccm-api.exotel.com")
    with pytest.raises(ValidationError, match="must not contain credentials") as info:
        ExotelSettings()
    assert "token@" not in str(info.value).replace("input_value='https://key:token@", "")


def test_credentials_and_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ExotelSettings()
    assert not settings.has_credentials
    assert settings.missing() == ["EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_ACCOUNT_SID"]
    monkeypatch.setenv("EXOTEL_API_KEY", "k-123456")
    monkeypatch.setenv("EXOTEL_API_TOKEN", "t-abcdef")
    monkeypatch.setenv("EXOTEL_ACCOUNT_SID", "acme")
    settings = ExotelSettings()
    assert settings.has_credentials and settings.missing() == []
    text = repr(settings) + str(settings) + settings.model_dump_json()
    assert "k-123456" not in text and "t-abcdef" not in text


def test_blank_values_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXOTEL_API_KEY", "  ")
    monkeypatch.setenv("EXOTEL_BASE_URL", "")
    settings = ExotelSettings()
    assert settings.api_key is None and settings.base_url is None
