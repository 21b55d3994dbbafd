"""Phone normalisation: the formats people use, and the fast path proven equal to the library."""

from __future__ import annotations

import random
import re

import numpy as np
import phonenumbers
import pytest

from ccm_tasks.inputs import _numberplan as plan
from ccm_tasks.inputs.phones import (
    REASON_BLANK,
    REASON_FRACTION,
    REASON_INVALID,
    REASON_NOT_A_NUMBER,
    REASON_SCIENTIFIC,
    REASON_WRONG_LENGTH,
    PhoneNormaliser,
    cell_text,
    normalise_phone,
)

SAME_NUMBER = [
    "+91 99531 23456",
    "09953123456",
    "9953123456",
    "919953123456",
    "099-5312-3456",
    "+919953123456",
    "+91-9953-123-456",
    "(099) 531-23456",
    " 9953123456 ",
    "919953123456.0",
    "9953123456.00",
    "0091 9953123456",
]


@pytest.mark.parametrize("text", SAME_NUMBER)
def test_indian_formats_normalise_to_e164(text: str) -> None:
    assert normalise_phone(text).e164 == "+919953123456"
    batch = PhoneNormaliser("IN").many(np.array([text], dtype=object))
    assert batch.e164[0] == "+919953123456"
    assert batch.key[0] == 919953123456


@pytest.mark.parametrize("cell", [9953123456, 919953123456, 9953123456.0, 919953123456.0])
def test_numeric_cells_are_read_as_their_digits(cell: float) -> None:
    assert normalise_phone(cell).e164 == "+919953123456"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9.19953E+11", REASON_SCIENTIFIC),
        ("9.19953e11", REASON_SCIENTIFIC),
        ("9,19953E+11", REASON_SCIENTIFIC),
        (1e16, REASON_SCIENTIFIC),  # too large to be an exact integer: repr is 1e+16
        (9953123456.5, REASON_FRACTION),  # a float cell that is not an exact integer
        ("9953123456.5", REASON_FRACTION),
        ("", REASON_BLANK),
        ("   ", REASON_BLANK),
        (None, REASON_BLANK),
        (float("nan"), REASON_BLANK),
        ("12345", REASON_WRONG_LENGTH),
        ("5555555555", REASON_INVALID),
        ("not a number", REASON_NOT_A_NUMBER),
    ],
)
def test_rejections_are_never_guesses(value: object, reason: str) -> None:
    result = normalise_phone(value)
    assert result.e164 is None
    assert result.reason == reason
    batch = PhoneNormaliser("IN").many(np.array([cell_text(value)], dtype=object))
    assert batch.e164[0] is None and batch.key[0] == 0
    assert batch.reason[0] == reason


def test_landline_with_std_code_is_valid_when_the_library_says_so() -> None:
    assert normalise_phone("011-2345-6789").e164 == "+911123456789"
    assert normalise_phone("080 4123 4567").e164 == "+918041234567"
    assert phonenumbers.is_valid_number(phonenumbers.parse("+911123456789"))


def test_cell_text_writes_integral_floats_without_decimals() -> None:
    assert cell_text(919953123456.0) == "919953123456"
    assert cell_text(9953123456) == "9953123456"
    assert cell_text(9953123456.5) == "9953123456.5"
    assert cell_text(None) == ""
    assert cell_text(True) == "TRUE"


def test_fast_path_is_compiled_for_india() -> None:
    normaliser = PhoneNormaliser("IN")
    assert normaliser.has_fast_path
    values = np.array(["9953123456", "+91 99531 23456", "5555555555", "12345"] * 100, dtype=object)
    normaliser.many(values)
    assert normaliser.slow_rows == 0


def test_digit_automaton_agrees_with_re_on_metadata_patterns() -> None:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("IN")
    rng = random.Random(5)
    for desc in (metadata.general_desc, metadata.mobile, metadata.fixed_line, metadata.toll_free):
        pattern = desc.national_number_pattern
        automaton = plan.DigitAutomaton([pattern])
        table = automaton.prefix_table(10)
        regex = re.compile(pattern)
        for _ in range(3000):
            digits = rng.choice("0123456789") + "".join(rng.choice("0123456789") for _ in range(9))
            expected = regex.fullmatch(digits) is not None
            assert automaton.fullmatch(digits) == expected
            verdict = table[int(digits[:6])]
            assert verdict == plan.UNDECIDED or bool(verdict) == expected


def _generated_inputs(rng: random.Random, count: int) -> list[str]:
    """Inputs of many shapes: good numbers in every format, near misses and junk."""

    def digits(n: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(n))

    prefixes = ["", "0", "91", "+91", "+91 ", "0091", "+910", "910", "00", "+", "+9", "+1", "1",
                "+44", "0 ", "++91", "91 0", "(+91) "]
    out = []
    for _ in range(count):
        shape = rng.random()
        if shape < 0.45:
            body = rng.choice("6789123450") + digits(rng.choice([9, 9, 9, 8, 10, 7, 11]))
            if rng.random() < 0.5:
                cuts = sorted(rng.sample(range(1, len(body)), rng.randint(1, 3)))
                parts = [body[i:j] for i, j in zip([0, *cuts], [*cuts, len(body)], strict=True)]
                body = rng.choice([" ", "-", "", ".", "(", ")"]).join(parts)
            out.append(rng.choice(prefixes) + body + rng.choice(["", "", "", ".0", " ", ".5"]))
        elif shape < 0.7:
            out.append("".join(rng.choice("0123456789 -()+") for _ in range(rng.randint(0, 22))))
        elif shape < 0.85:
            out.append(digits(rng.randint(1, 19)))
        else:
            out.append("".join(rng.choice("0123456789 -()+.eExt#/,a\t") for _ in
                               range(rng.randint(0, 26))))
    return out


@pytest.mark.parametrize("region", ["IN", "SG", "DE", "BR"])
def test_fast_path_matches_the_library_on_generated_inputs(region: str) -> None:
    rng = random.Random(20260105)
    values = _generated_inputs(rng, 4000 if region == "IN" else 1500)
    normaliser = PhoneNormaliser(region)
    batch = normaliser.many(np.array(values, dtype=object))
    for i, value in enumerate(values):
        expected = normalise_phone(value, region)
        assert (batch.e164[i], batch.reason[i]) == (expected.e164, expected.reason), value
        assert batch.key[i] == (int(expected.e164[1:]) if expected.e164 else 0)
    if region == "IN":
        assert normaliser.has_fast_path
        assert normaliser.fast_rows > len(values) // 3  # the fast path really decided rows


def test_many_handles_non_ascii_and_long_values() -> None:
    values = np.array(["९९५३१२३४५६", "9953123456\u00a0", "9" * 40, "99531 23456"], dtype=object)
    batch = PhoneNormaliser("IN").many(values)
    for i, value in enumerate(values):
        assert batch.e164[i] == normalise_phone(value).e164


def test_many_accepts_cells_that_are_not_strings() -> None:
    values = np.array([9953123456, 919953123456.0, None, float("nan"), 9953123456.5], dtype=object)
    batch = PhoneNormaliser("IN").many(values)
    assert batch.e164.tolist()[:2] == ["+919953123456", "+919953123456"]
    assert batch.reason.tolist()[2:] == [REASON_BLANK, REASON_BLANK, REASON_FRACTION]
