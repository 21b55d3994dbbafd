"""The run_campaign flow under a real (temporary) Prefect server, run standalone as a deployment
would run it: it prepares the campaign, dials the built-in simulator, publishes artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccm_tasks.ledger import Ledger
from tests.dialer.campaign_files import write_campaign


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "EXOTEL_ACCOUNT_SID", "EXOTEL_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CCM_HOME", str(tmp_path))
    monkeypatch.setenv("CCM_SIM_TIME_SCALE", "1500")
    return tmp_path


async def test_run_campaign_flow(prefect_server: None, sandbox: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.campaign import run_campaign

    agents = [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(1, 5)]
    numbers = [f"+9199{i:08d}" for i in range(20)]
    definition = write_campaign(sandbox / "c", "flowtest", agents=agents, numbers=numbers)
    ledger = sandbox / "ledger.sqlite"
    state = await run_campaign(definition=str(definition), ledger=str(ledger), progress_every=0.2,
                               return_state=True)
    assert state.is_completed(), state.message
    summary = await state.result()  # type: ignore[misc]
    assert summary.status == "completed" and summary.final == 20 and summary.simulated
    assert Path(summary.files[0]).exists()  # noqa: ASYNC240
    led = Ledger(ledger)
    assert led.count("customers", state="done") == 20
    async with get_client() as client:
        arts = await client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["flowtest-run-summary", "flowtest-progress"])))
    kinds = {a.key: a for a in arts}
    assert "flowtest-run-summary" in kinds and "completed" in str(kinds["flowtest-run-summary"].data)
    assert "flowtest-progress" in kinds
    # The latest progress of a completed run is its final figure, not the last snapshot before it.
    progress = max((a for a in arts if a.key == "flowtest-progress"), key=lambda a: a.updated or a.created)
    assert float(progress.data) == 100.0, [(a.created, a.updated, a.data) for a in arts]


async def test_run_campaign_flow_fails_cleanly_when_the_campaign_cannot_run(prefect_server: None,
                                                                            sandbox: Path) -> None:
    from flows.campaign import run_campaign

    definition = sandbox / "broken.yaml"
    definition.write_text("name: broken\nagents: nowhere.csv\n")
    state = await run_campaign(definition=str(definition), return_state=True)
    assert state.is_failed()
    assert "customers" in (state.message or "") or "customers" in str(state.data)


async def test_a_campaign_named_with_capitals_and_underscores_runs_through_the_flow(
        prefect_server: None, sandbox: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from ccm_tasks.keys import artifact_key
    from flows.campaign import run_campaign

    agents = [(f"agent-{i:03d}", f"+91980000{i:04d}") for i in range(1, 3)]
    definition = write_campaign(sandbox / "n", "Run5_CampA", agents=agents,
                                numbers=[f"+9199{i:08d}" for i in range(4)])
    state = await run_campaign(definition=str(definition), ledger=str(sandbox / "n.sqlite"),
                               progress_every=0.2, return_state=True)
    assert state.is_completed(), state.message
    key = artifact_key("Run5_CampA", "run-summary")
    assert key.startswith("run5-campa-") and key == key.lower()
    async with get_client() as client:
        arts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert arts and "completed" in str(arts[0].data)
    assert artifact_key("run5-campa") != artifact_key("Run5_CampA")  # no collision with a look-alike
