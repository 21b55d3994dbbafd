"""The console writes ordinary definitions: what the form says round-trips, and errors sit by their field."""

from __future__ import annotations

import re
from pathlib import Path

from ccm_tasks.console.definitions import Workspace, to_mapping
from ccm_tasks.console.forms import apply_form, form_values
from ccm_tasks.inputs import CampaignDefinition, load_definition
from tests.console.conftest import Console, csrf

REPO = Path(__file__).resolve().parents[2]


def test_every_definition_round_trips_through_the_form(tmp_path: Path) -> None:
    for source in (REPO / "campaigns" / "example.yaml", REPO / "campaigns" / "demo" / "demo.yaml"):
        definition = load_definition(source)
        mapping = to_mapping(definition, definition.base_dir)
        again = CampaignDefinition.from_mapping(apply_form(mapping, _as_form(form_values(mapping))),
                                                base_dir=definition.base_dir)
        assert again.model_dump() == definition.model_dump(), source


def _as_form(values: dict[str, object]) -> dict[str, object]:
    form: dict[str, object] = {}
    for key, value in values.items():
        if key == "sheets":
            form["sheet"] = [v or "" for v in value]  # type: ignore[attr-defined]
        elif isinstance(value, bool):
            if value:
                form[key] = "1"
        else:
            form[key] = value
    return form


def test_written_file_is_read_by_ccm_run_unchanged(tmp_path: Path) -> None:
    demo = load_definition(REPO / "campaigns" / "demo" / "demo.yaml")
    workspace = Workspace(tmp_path)
    mapping = to_mapping(demo, tmp_path / "copy")
    mapping["name"] = "copy"
    mapping["start_at"] = "2026-12-24T10:00"
    mapping["schedule"] = {"cron": "0 10 * * 1-5", "timezone": "Asia/Kolkata"}
    written = workspace.write("copy", mapping, by="tester")
    text = (tmp_path / "copy" / "copy.yaml").read_text()
    assert text.startswith("# Campaign copy: written by the ccm console (tester")
    assert written.customers.files[0].path.resolve() == demo.customers.files[0].path.resolve()
    assert written.start_at is not None and written.start_at.utcoffset().total_seconds() == 5.5 * 3600  # type: ignore[union-attr]
    assert written.schedule is not None and written.schedule.cron == "0 10 * * 1-5"


def test_problems_are_shown_next_to_their_fields(console: Console) -> None:
    client = console.client("operator")
    demo = console.home / "campaigns" / "demo"
    made = client.post("/campaigns/new", data={"csrf_token": csrf(client.get("/").text), "name": "mine",
                                               "virtual_number": "+918045680000", "roster": "0"},
                       files=[("customers", ("customers.csv", (demo / "customers.csv").read_bytes()))])
    assert made.status_code == 303
    page = client.get("/campaigns/mine/edit")
    assert page.status_code == 200 and "Mobile No." in page.text  # the preview found the phone column
    response = client.post("/campaigns/mine/edit", data={
        "csrf_token": csrf(page.text), "window_start": "25:00", "window_end": "21:00",
        "timezone": "Mars/Base",
        "days": ["mon"], "virtual_number": "+918045680000", "max_attempts": "0", "interval_minutes": "30",
        "api_budget_per_minute": "200", "sheet": ["", "*"]})
    assert response.status_code == 400
    for field in ("window_start", "timezone", "max_attempts"):
        assert re.search(rf'id="{field}-error">[^<]+', response.text), field
    assert "max_attempts: 3" in (console.home / "campaigns" / "mine" / "mine.yaml").read_text()  # unchanged
    # A definition written by hand is shown, never rewritten.
    assert "written by hand" in client.get("/campaigns/demo/edit").text
    refused = client.post("/campaigns/demo/edit", data={"csrf_token": csrf(page.text)})
    assert refused.status_code == 400 and "edit demo.yaml by hand" in refused.text
    assert (demo / "demo.yaml").read_text() == (REPO / "campaigns" / "demo" / "demo.yaml").read_text()
