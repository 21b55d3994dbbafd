"""A number is dialled exactly as written or not at all (issue 10, part 1).

libphonenumber is built to be forgiving: it maps keypad letters to digits, drops a stray letter, a
"*" or a minus sign, and splits extensions off. Each of those would ring a stranger. These tests pin
our rules on the reference (`normalise_phone`), on the fast vectorised path (`PhoneNormaliser.many`),
and on every path that reads numbers: customers, do-not-call lists, rosters, preferred agents.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ccm_tasks.inputs import load_campaign_inputs, load_definition
from ccm_tasks.inputs.phones import (
    REASON_EXTENSION,
    REASON_MINUS,
    REASON_NOT_A_NUMBER,
    REASON_PLUS_INSIDE,
    REASON_SEVERAL,
    PhoneNormaliser,
    normalise_phone,
)

MakeCampaign = Callable[..., Path]
WriteCsv = Callable[..., Path]
WriteXlsx = Callable[..., Path]


def _both(value: str, region: str = "IN", countries: tuple[str, ...] | None = None) -> tuple[
        str | None, str | None]:
    """The reference's verdict, checked against the column path's."""
    expected = normalise_phone(value, region, countries)
    batch = PhoneNormaliser(region, countries).many(np.array([value], dtype=object))
    assert (batch.e164[0], batch.reason[0]) == (expected.e164, expected.reason), value
    return expected.e164, expected.reason


# --------------------------------------------------------------------------- letters


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        # The two: keypad letters, and the letter O typed for zero.
        ("98765abcde", "letters 'a', 'b', 'c', 'd', 'e' found where digits belong"),
        ("9812OOO018", "letter 'O' found where digits belong"),
        ("9812ooo018", "letter 'o' found where digits belong"),
        ("98l2000018", "letter 'l' found where digits belong"),  # l for 1
        ("98I2000018", "letter 'I' found where digits belong"),  # I for 1
        ("9953123456l", "letter 'l' found where digits belong"),  # the library drops it
        ("1-800-FLOWERS", "letters 'F', 'L', 'O', 'W', 'E', 'R', ... found where digits belong"),
        ("+91 99531 2345S", "letter 'S' found where digits belong"),
        ("Mob: 9953123456", "letters 'M', 'o', 'b' and character ':' found where digits belong"),
        ("tel:+919953123456", "letters 't', 'e', 'l' and character ':' found where digits belong"),
        ("९९५३१२३४५क", "letter 'क' found where digits belong"),
        ("99*53123456", "character '*' found where digits belong"),  # the library drops a star
        ("9953123456~", "character '~' found where digits belong"),
        ("9,953,123,456", "character ',' found where digits belong"),
        ('"9953123456"', "character '\"' found where digits belong"),
    ],
)
def test_letters_and_symbols_are_never_turned_into_digits(value: str, reason: str) -> None:
    assert _both(value) == (None, reason)


def test_words_without_digits_are_not_a_phone_number() -> None:
    for value in ("N/A", "call later", "not available", "-"):
        assert _both(value) == (None, REASON_NOT_A_NUMBER)


@pytest.mark.parametrize(
    "value",
    ["9953123456 ext. 12", "9953123456 x12", "9953123456x12", "9953123456 #12", "9953123456#12",
     "+91 11 2345 6789 extn 45", "9953123456 Ext: 7", "9953123456;ext=12", "9953123456 X 123"],
)
def test_extensions_are_rejected_not_dropped(value: str) -> None:
    assert _both(value) == (None, REASON_EXTENSION)


@pytest.mark.parametrize("value", ["-9812000023", "- 9812000023", "\u22129812000023", "+-919812000023",
                                   "(-)9812000023"])
def test_a_minus_sign_is_rejected_not_made_positive(value: str) -> None:
    assert _both(value) == (None, REASON_MINUS)


def test_negative_number_cells_are_rejected() -> None:
    assert normalise_phone(-9812000023).reason == REASON_MINUS
    assert normalise_phone(-9812000023.0).reason == REASON_MINUS


@pytest.mark.parametrize(("value", "reason"), [
    ("++91 9953123456", REASON_PLUS_INSIDE),
    ("91+9953123456", REASON_PLUS_INSIDE),
    ("9953123456 / 9953123457", REASON_SEVERAL),
    ("9953123456, 9953123457", REASON_SEVERAL),
    ("9953123456 or 9953123457", REASON_SEVERAL),
    ("9953123456\n9953123457", REASON_SEVERAL),
    (")9953123456", "starts with ')', not a digit"),
])
def test_stray_symbols_are_rejected(value: str, reason: str) -> None:
    assert _both(value) == (None, reason)


@pytest.mark.parametrize(
    "value",
    [
        "+91-9953123456", "+91 - 99531 23456", "91-99531-23456", "+91 (0) 99531 23456",
        "(+91) 99531 23456", "099531\u00a023456", "\u00a09953123456\u00a0", "99531\u200b23456",
        "\u200e+919953123456", "\ufeff9953123456", "'9953123456", "'+919953123456",
        '="09953123456"', "९९५३१२३४५६", "\uff19\uff19\uff15\uff13\uff11\uff12\uff13\uff14\uff15\uff16",
        "99.53.12.34.56", "919953123456.0", "\u2019+91 99531 23456",
    ],
)
def test_numbers_written_in_realistic_ways_are_read_exactly(value: str) -> None:
    assert _both(value) == ("+919953123456", None)


# --------------------------------------------------------------------------- countries


def test_a_number_of_another_country_is_rejected_with_its_name() -> None:
    assert _both("+1 212 555 0100", countries=("IN",)) == (
        None, "+1: United States, not in this campaign's countries")
    assert _both("+1 613 555 0123", countries=("IN", "US")) == (
        None, "+1: Canada, not in this campaign's countries")
    assert _both("+65 9123 4567", countries=("IN",)) == (
        None, "+65: Singapore, not in this campaign's countries")
    assert _both("0091 9953123456", countries=("IN",)) == ("+919953123456", None)
    assert _both("+65 9123 4567", countries=("IN", "SG")) == ("+6591234567", None)


def test_region_names_match_the_librarys_geocoder() -> None:
    import phonenumbers
    from phonenumbers import geocoder

    from ccm_tasks.inputs._regions import REGION_NAMES

    expected = {r: geocoder._region_display_name(r, "en") for r in sorted(phonenumbers.SUPPORTED_REGIONS)}
    # On a mismatch, write `expected` into ccm_tasks/inputs/_regions.py.
    assert expected == REGION_NAMES


def test_the_fast_path_applies_the_countries_too() -> None:
    values = np.array(["9953123456", "+91 99531 23457", "+6591234567"] * 50, dtype=object)
    normaliser = PhoneNormaliser("IN", ("SG",))
    batch = normaliser.many(values)
    assert normaliser.fast_rows >= 100
    assert batch.e164.tolist()[:3] == [None, None, "+6591234567"]
    assert batch.reason.tolist()[:2] == ["+91: India, not in this campaign's countries"] * 2
    assert not batch.key[:2].any()


# --------------------------------------------------------------------------- differential


def _realistic_inputs(rng: random.Random, count: int) -> list[str]:
    """What people type and CRMs export, right and wrong: letters among the digits included."""

    def digits(n: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(n))

    prefixes = ["", "", "0", "91", "+91", "+91 ", "+91-", "0091 ", "(+91) ", "+", "'", "+1 ",
                "+65 ", "00", "-", " -", "+-", "tel:", "Mob: ", "\u200b", "\u00a0", "(0)"]
    suffixes = ["", "", "", ".0", ".00", ".5", " ext. 12", " x12", "#12", "x", "l", "-", " ",
                "\u00a0", "\u200b", ";ext=3", " / 9953123457", "*", "~"]
    lookalikes = {"0": "Oo", "1": "lIi", "5": "S", "8": "B", "2": "Z"}
    out = []
    for _ in range(count):
        body = rng.choice("6789") + digits(rng.choice([9, 9, 9, 8, 10, 11]))
        roll = rng.random()
        if roll < 0.25:  # one or more digits typed as letters
            chars = list(body)
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(chars))
                chars[i] = rng.choice(lookalikes.get(chars[i], "abcdefghjkmnpqrtuvwxyz"))
            body = "".join(chars)
        elif roll < 0.35:  # a keypad word
            body = body[:rng.randint(3, 7)] + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                                                     for _ in range(rng.randint(3, 7)))
        if rng.random() < 0.4:
            cut = rng.randint(2, len(body) - 2)
            body = body[:cut] + rng.choice([" ", "-", "  ", ".", ") ", "\u2013"]) + body[cut:]
        if rng.random() < 0.1:
            body = "".join("\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f"[int(c)]
                           if c.isdigit() else c for c in body)  # Devanagari digits
        if rng.random() < 0.5:  # half of them in the shapes the fast path decides itself
            out.append(rng.choice(["", "0", "91", "+91", "+91 ", "+91-", "(0)", "+1 "]) + body)
        else:
            out.append(rng.choice(prefixes) + body + rng.choice(suffixes))
    return out


@pytest.mark.parametrize(("region", "countries"), [("IN", None), ("IN", ("IN",)),
                                                    ("IN", ("IN", "US")), ("SG", ("SG",))])
def test_fast_path_and_library_agree_letters_included(
    region: str, countries: tuple[str, ...] | None
) -> None:
    rng = random.Random(1010)
    values = _realistic_inputs(rng, 6000)
    normaliser = PhoneNormaliser(region, countries)
    batch = normaliser.many(np.array(values, dtype=object))
    reference = PhoneNormaliser(region, countries).many(np.array(values, dtype=object), fast=False)
    for i, value in enumerate(values):
        expected = normalise_phone(value, region, countries)
        assert (batch.e164[i], batch.reason[i]) == (expected.e164, expected.reason), repr(value)
        assert (reference.e164[i], reference.reason[i]) == (expected.e164, expected.reason)
        if expected.e164 is not None:
            assert not any(c.isalpha() for c in value), repr(value)
    if region == "IN":
        assert normaliser.fast_rows > len(values) // 5  # the fast path decided a real share
        accepted = sum(e is not None for e in batch.e164)
        assert 0.1 * len(values) < accepted < 0.9 * len(values)  # both outcomes well represented


def test_no_value_with_a_letter_is_ever_accepted() -> None:
    rng = random.Random(7)
    alphabet = "0123456789" * 3 + " -+().,#*/xXeEoOlIsS\u00a0\u200b'=\"\t:;" + "abcdefghijkmnpqrtuvwyz"
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 22))) for _ in range(20000)]
    values += _realistic_inputs(rng, 5000)
    for region in ("IN", "US", "GB"):
        batch = PhoneNormaliser(region).many(np.array(values, dtype=object))
        for value, e164 in zip(values, batch.e164, strict=True):
            if e164 is not None:
                assert not any(c.isalpha() for c in value), repr(value)


# --------------------------------------------------------------------------- every path


LETTERED = ["98765abcde", "9812OOO018", "98l2000018", "9953123456 x12", "-9812000023"]


def test_customers_reject_letters_with_row_column_and_reason(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Name", "Mobile"], ["ok", "9953123401"],
                                           *[[f"n{i}", v] for i, v in enumerate(LETTERED)]])
    inputs = load_campaign_inputs(make_campaign())
    assert inputs.customers["phone"].tolist() == ["+919953123401"]
    assert inputs.rejects[["row", "column", "value", "reason"]].values.tolist() == [
        [3, "Mobile", "98765abcde", "letters 'a', 'b', 'c', 'd', 'e' found where digits belong"],
        [4, "Mobile", "9812OOO018", "letter 'O' found where digits belong"],
        [5, "Mobile", "98l2000018", "letter 'l' found where digits belong"],
        [6, "Mobile", "9953123456 x12", REASON_EXTENSION],
        [7, "Mobile", "-9812000023", REASON_MINUS],
    ]


def test_do_not_call_entries_with_letters_are_reported_never_matched(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    # "9812OOO018" must not become +919812666018 and suppress (or fail to suppress) anyone.
    write_csv(tmp_path / "customers.csv", [["Phone"], ["9812666018"], ["9812000018"]])
    write_csv(tmp_path / "dnc.csv", [["Phone"], ["9812OOO018"], ["+91 98120 00018"]])
    inputs = load_campaign_inputs(make_campaign(do_not_call="dnc.csv"))
    assert inputs.customers["phone"].tolist() == ["+919812666018"]
    assert inputs.suppressed["row"].tolist() == [3]
    assert inputs.dnc_rejects[["row", "value", "reason"]].values.tolist() == [
        [2, "9812OOO018", "letter 'O' found where digits belong"]]


def test_roster_contact_numbers_with_letters_are_rejected(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Phone"], ["9953123401"]])
    agents = [["user_id", "contact_uri"], ["a1", "98000OOOO1"], ["", "9800000002 ext 5"],
              ["", "+91 98000 00003"]]
    inputs = load_campaign_inputs(make_campaign(agents=agents))
    assert [(a.agent_key, a.contact_uri) for a in inputs.agents] == [("+919800000003", "+919800000003")]
    rejects = inputs.agent_rejects[["row", "column", "reason"]].values.tolist()
    assert rejects == [
        [2, "contact_uri", "not a phone number or SIP URI (letter 'O' found where digits belong)"],
        [3, "contact_uri", f"not a phone number or SIP URI ({REASON_EXTENSION})"],
    ]


def test_preferred_agent_numbers_with_letters_match_nobody(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    # The roster has +919800000001; "98OOOOOOO1" must not be read as it.
    write_csv(tmp_path / "customers.csv", [["Phone", "Preferred Agent"], ["9953123401", "98OOOOOOO1"],
                                           ["9953123402", "098000 00001"]])
    inputs = load_campaign_inputs(make_campaign())
    assert inputs.customers["preferred_agent"].tolist()[1] == "agent-001"
    assert inputs.customers["preferred_agent"].isna().tolist() == [True, False]
    assert inputs.warnings["row"].tolist() == [2]


def test_workbook_number_cells_and_letters(
    tmp_path: Path, write_xlsx: WriteXlsx, make_campaign: MakeCampaign
) -> None:
    write_xlsx(tmp_path / "c.xlsx", {"Leads": [
        ["Name", "Mobile Number*"],
        ["a", 9953123401],          # a number cell
        ["b", 919953123402.0],      # Excel made it a float
        ["c", -9812000023],         # a negative number cell
        ["d", "9953l23404"],
        ["e", "+91-9953123405"],
    ]})
    inputs = load_campaign_inputs(make_campaign("c.xlsx"))
    assert inputs.customers["phone"].tolist() == ["+919953123401", "+919953123402", "+919953123405"]
    assert inputs.rejects[["sheet", "row", "column", "value", "reason"]].values.tolist() == [
        ["Leads", 4, "Mobile Number*", "-9812000023", REASON_MINUS],
        ["Leads", 5, "Mobile Number*", "9953l23404", "letter 'l' found where digits belong"],
    ]


def test_campaign_countries_reject_other_countries(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [
        ["Phone"], ["9953123401"], ["+1 212 555 0100"], ["+971 50 123 4567"], ["+44 20 7946 0958"]])
    inputs = load_campaign_inputs(make_campaign())  # default: the default region alone
    assert inputs.customers["phone"].tolist() == ["+919953123401"]
    assert inputs.rejects[["row", "reason"]].values.tolist() == [
        [3, "+1: United States, not in this campaign's countries"],
        [4, "+971: United Arab Emirates, not in this campaign's countries"],
        [5, "+44: United Kingdom, not in this campaign's countries"],
    ]
    path = make_campaign(customers={"files": ["customers.csv"], "countries": ["IN", "ae"]})
    assert load_definition(path).customers.calling_regions == ("IN", "AE")
    inputs = load_campaign_inputs(path)
    assert inputs.customers["phone"].tolist() == ["+919953123401", "+971501234567"]
    assert inputs.rejects["row"].tolist() == [3, 5]


def test_unknown_country_is_a_definition_error(tmp_path: Path, make_campaign: MakeCampaign) -> None:
    from ccm_tasks.inputs import DefinitionError

    with pytest.raises(DefinitionError, match=r"customers.countries: 'XX': not ISO region codes"):
        load_definition(make_campaign(customers={"files": ["c.csv"], "countries": ["IN", "XX"]}))
    with pytest.raises(DefinitionError, match=r"customers.countries"):
        load_definition(make_campaign(customers={"files": ["c.csv"], "countries": []}))


def test_a_file_of_only_lettered_numbers_leaves_nothing_to_call(
    tmp_path: Path, write_csv: WriteCsv, make_campaign: MakeCampaign
) -> None:
    write_csv(tmp_path / "customers.csv", [["Phone"], *[[v] for v in LETTERED]])
    inputs = load_campaign_inputs(make_campaign())
    assert inputs.customers.empty
    assert len(inputs.rejects) == len(LETTERED)
    assert not inputs.customers["phone"].tolist()
