"""The agent roster: CSV, XLSX and YAML; validation, deduplication and a roster nobody can use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from ccm_tasks.inputs import Agent, AgentRecord, InputFileError, load_agents
from ccm_tasks.inputs.phones import PhoneNormaliser

ROSTER = [
    ["User ID", "Contact URI", "Name", "Group"],
    ["agent-001", "+919800000001", "Asha", "sales"],
    ["agent-002", "098000 00002", "Bala", "sales"],
    ["", "sip:carol@pbx.example.com", "Carol", "support"],
    ["", "", "Nobody", "support"],  # neither user_id nor contact_uri
    ["agent-001", "+919800000011", "Asha twin", "sales"],  # duplicate user_id
    ["agent-005", "+91 98000 00002", "Bala twin", "sales"],  # duplicate contact_uri
    ["agent-006", "12345", "Bad number", "sales"],
    ["agent 007", "", "Spaced", "sales"],
    ["", "", "", ""],  # blank row: skipped
    ["agent-008", "", "Dana", ""],
]


def _check_roster(roster_agents: list[Agent], rejects: list[list[object]]) -> None:
    assert roster_agents == [
        Agent("agent-001", "agent-001", "+919800000001", "Asha", "sales"),
        Agent("agent-002", "agent-002", "+919800000002", "Bala", "sales"),
        Agent("sip:carol@pbx.example.com", None, "sip:carol@pbx.example.com", "Carol", "support"),
        Agent("agent-008", "agent-008", None, "Dana", None),
    ]
    assert [r[0] for r in rejects] == ["agent_rejected", "agent_duplicate", "agent_duplicate",
                                       "agent_rejected", "agent_rejected"]


def test_csv_roster(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    path = write_csv(tmp_path / "agents.csv", ROSTER)
    roster = load_agents(path, normaliser=PhoneNormaliser())
    rejects = roster.rejects[["kind", "row", "column", "reason"]].values.tolist()
    _check_roster(roster.agents, rejects)
    assert [r[1] for r in rejects] == [5, 6, 7, 8, 9]
    assert "neither user_id nor contact_uri" in rejects[0][3]
    assert rejects[1][3] == "duplicate user_id (first at row 2)"
    assert rejects[2][3] == "duplicate contact_uri +919800000002 (first at row 3)"
    assert rejects[3][2] == "contact_uri"
    assert rejects[4][2] == "user_id"
    assert roster.rows == 9
    assert roster.duplicates == 2


def test_xlsx_roster_with_numeric_contact_cells(
    tmp_path: Path, write_xlsx: Callable[..., Path]
) -> None:
    rows = [list(r) for r in ROSTER]
    rows[1][1] = 919800000001.0  # Excel stored the number as a number
    path = write_xlsx(tmp_path / "agents.xlsx", {"Agents": rows})
    roster = load_agents(path, normaliser=PhoneNormaliser())
    _check_roster(roster.agents, roster.rejects[["kind"]].values.tolist())
    assert roster.rejects["sheet"].iloc[0] == "Agents"


def test_yaml_roster_rows_are_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(
        "agents:\n"
        "  - user_id: agent-001\n"
        "    contact_uri: +919800000001\n"  # unquoted: still the number, not an integer
        "    name: Asha\n"
        "    group: sales\n"
        "  - {user_id: agent-002, contact_uri: '098000 00002', name: Bala, group: sales}\n"
        "  - {contact_uri: 'sip:carol@pbx.example.com', name: Carol, group: support}\n"
        "  - {name: Nobody, group: support}\n"
        "  - {user_id: agent-001, contact_uri: '+919800000011', name: Asha twin}\n"
        "  - {user_id: agent-005, contact_uri: 919800000002, name: Bala twin}\n"
        "  - {user_id: agent-006, contact_uri: '12345', name: Bad number}\n"
        "  - {user_id: agent 007, name: Spaced}\n"
        "  - agent-008\n"
        "  - {user_id: agent-009, usr_name: typo}\n"
    )
    roster = load_agents(path, normaliser=PhoneNormaliser())
    assert [a.agent_key for a in roster.agents] == [
        "agent-001", "agent-002", "sip:carol@pbx.example.com", "agent-008"]
    assert roster.agents[3] == Agent("agent-008", "agent-008", None, None, None)
    rejects = roster.rejects
    assert rejects["row"].tolist() == [8, 9, 10, 11, 12, 14]
    assert "unknown key 'usr_name'" in rejects["reason"].iloc[-1]


def test_yaml_roster_as_a_plain_list(tmp_path: Path) -> None:
    path = tmp_path / "agents.yml"
    path.write_text("- {user_id: agent-001}\n- {phone: '+919800000002', team: support}\n")
    roster = load_agents(path, normaliser=PhoneNormaliser())
    assert [(a.agent_key, a.group) for a in roster.agents] == [
        ("agent-001", None), ("+919800000002", "support")]


def test_roster_with_no_usable_agent_is_an_error(
    tmp_path: Path, write_csv: Callable[..., Path]
) -> None:
    path = write_csv(tmp_path / "agents.csv", [["user_id", "contact_uri", "name"],
                                               ["", "", "Nobody"], ["", "12345", "Bad"]])
    with pytest.raises(InputFileError, match=r"agents.csv: no usable agent in the roster \(2 rows, "
                                             r"all rejected: row 2: neither user_id"):
        load_agents(path, normaliser=PhoneNormaliser())


def test_roster_without_id_or_contact_column(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    path = write_csv(tmp_path / "agents.csv", [["name", "group"], ["Asha", "sales"]])
    with pytest.raises(InputFileError, match="no user_id or contact_uri column"):
        load_agents(path, normaliser=PhoneNormaliser())


@pytest.mark.parametrize("content", ["", "agents: []\n", "{}\n", "just text\n"])
def test_empty_or_malformed_yaml_roster(tmp_path: Path, content: str) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(content)
    with pytest.raises(InputFileError, match=r"agents\.yaml"):
        load_agents(path, normaliser=PhoneNormaliser())


def test_agent_record_is_the_pydantic_boundary() -> None:
    record = AgentRecord.model_validate({"contact_uri": "09800000001", "name": " Asha "})
    assert record.to_agent() == Agent("+919800000001", None, "+919800000001", "Asha", None)
    with pytest.raises(ValidationError, match="not a SIP URI"):
        AgentRecord.model_validate({"contact_uri": "sip:nobody"})
    with pytest.raises(ValidationError, match="neither user_id nor contact_uri"):
        AgentRecord.model_validate({"name": "x"})
