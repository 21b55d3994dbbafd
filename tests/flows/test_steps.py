"""The pull step that starts a worker's runs in its own folder (flows/steps.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows.steps import working_directory_from_env


def test_the_step_changes_to_the_folder_the_workers_environment_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flows").mkdir()
    monkeypatch.chdir(Path.cwd())  # restored after the test
    monkeypatch.setenv("CCM_WORKDIR", str(tmp_path))
    assert working_directory_from_env() == {"directory": str(tmp_path.resolve())}
    assert Path(os.getcwd()) == tmp_path.resolve()


def test_the_step_says_what_to_set_when_the_folder_is_missing_or_wrong(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path.cwd())
    monkeypatch.delenv("CCM_WORKDIR", raising=False)
    with pytest.raises(RuntimeError, match="CCM_WORKDIR is not set on this worker"):
        working_directory_from_env()
    monkeypatch.setenv("CCM_WORKDIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="no flows/ folder"):
        working_directory_from_env()
