"""Decide libphonenumber's number patterns from a number's leading digits, in bulk.

libphonenumber validates a national number by matching it against regular expressions from its
metadata (``PhoneMetadata.national_number_pattern`` for each number type). For a fixed length, most
of those patterns only look at the first few digits: ``9\\d\\d\\d{7}`` accepts every 10-digit number
that starts with 9. This module turns a pattern into a lookup table over the first ``KEY_DIGITS``
digits, so a million numbers are classified with one NumPy indexing operation instead of a million
regex calls.

The table is exact, not a heuristic: the pattern is compiled (through Python's own regex parser) into
an automaton over the ten digits, and a prefix is marked

* ``MATCH`` when *every* completion of it to the target length matches the pattern,
* ``NO_MATCH`` when *no* completion matches,
* ``UNDECIDED`` otherwise (the caller then asks the library itself).

A pattern using a construct the automaton does not model raises :class:`UnsupportedPattern`; the
caller then skips the fast path entirely.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from re import _constants as sre_c  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import numpy as np
import numpy.typing as npt

MATCH = 1
NO_MATCH = 0
UNDECIDED = -1

# 10**6 prefixes: a 1 MB table per pattern, built in a few tens of milliseconds, and enough to decide
# every Indian number range (the longest leading-digit rule in the IN metadata is 6 digits).
KEY_DIGITS = 6

_ALL_DIGITS = frozenset(range(10))

Table = npt.NDArray[np.int8]


class UnsupportedPattern(ValueError):
    """The pattern uses a regex construct the digit automaton does not model."""


class _NFA:
    """A Thompson automaton over the digits 0-9 (epsilon moves allowed)."""

    def __init__(self) -> None:
        self.moves: list[list[tuple[frozenset[int], int]]] = []
        self.eps: list[list[int]] = []

    def state(self) -> int:
        self.moves.append([])
        self.eps.append([])
        return len(self.moves) - 1

    def build(self, items: Iterable[tuple[Any, Any]], start: int) -> int:
        """Add the sequence ``items`` after ``start``; return the state where it ends."""
        current = start
        for op, av in items:
            current = self._node(op, av, current)
        return current

    def _node(self, op: Any, av: Any, start: int) -> int:
        if op in (sre_c.LITERAL, sre_c.NOT_LITERAL, sre_c.IN, sre_c.ANY):
            digits = _digit_set(op, av)
            end = self.state()
            if digits:
                self.moves[start].append((digits, end))
            return end
        if op is sre_c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                raise UnsupportedPattern("inline flags")
            return self.build(sub, start)
        if op is sre_c.BRANCH:
            _unused, alternatives = av
            end = self.state()
            for alternative in alternatives:
                self.eps[self.build(alternative, start)].append(end)
            return end
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            low, high, sub = av
            current = start
            for _ in range(low):
                current = self.build(sub, current)
            if high == sre_c.MAXREPEAT:
                loop_end = self.build(sub, current)
                self.eps[loop_end].append(current)
                return current
            end = self.state()
            self.eps[current].append(end)
            for _ in range(high - low):
                current = self.build(sub, current)
                self.eps[current].append(end)
            return end
        raise UnsupportedPattern(f"regex construct {op}")


def _digit_set(op: Any, av: Any) -> frozenset[int]:
    """The ASCII digits one single-character node accepts."""
    if op is sre_c.ANY:
        return _ALL_DIGITS
    if op is sre_c.LITERAL:
        return frozenset({av - 48}) if 48 <= av <= 57 else frozenset()
    if op is sre_c.NOT_LITERAL:
        return _ALL_DIGITS - {av - 48}
    accepted: set[int] = set()
    negate = False
    for item_op, item_av in av:
        if item_op is sre_c.NEGATE:
            negate = True
        elif item_op is sre_c.LITERAL:
            if 48 <= item_av <= 57:
                accepted.add(item_av - 48)
        elif item_op is sre_c.RANGE:
            low, high = item_av
            accepted.update(d for d in range(10) if low <= d + 48 <= high)
        elif item_op is sre_c.CATEGORY:
            if item_av in (sre_c.CATEGORY_DIGIT, sre_c.CATEGORY_NOT_SPACE, sre_c.CATEGORY_WORD):
                accepted.update(_ALL_DIGITS)
            elif item_av not in (
                sre_c.CATEGORY_NOT_DIGIT, sre_c.CATEGORY_SPACE, sre_c.CATEGORY_NOT_WORD
            ):
                raise UnsupportedPattern(f"character category {item_av}")
        else:
            raise UnsupportedPattern(f"character set item {item_op}")
    return frozenset(_ALL_DIGITS - accepted if negate else accepted)


class DigitAutomaton:
    """A deterministic automaton over digits for one or more patterns (their union)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        nfa = _NFA()
        start = nfa.state()
        finals: set[int] = set()
        for pattern in patterns:
            try:
                parsed = sre_parse.parse(pattern)
            except re.error as exc:  # pragma: no cover - metadata patterns always compile
                raise UnsupportedPattern(str(exc)) from exc
            if parsed.state.flags & ~(sre_c.SRE_FLAG_UNICODE):
                raise UnsupportedPattern("regex flags")
            entry = nfa.state()
            nfa.eps[start].append(entry)
            finals.add(nfa.build(parsed, entry))
        self._subset_construction(nfa, start, finals)

    def _subset_construction(self, nfa: _NFA, start: int, finals: set[int]) -> None:
        def closure(states: Iterable[int]) -> frozenset[int]:
            stack = list(states)
            seen = set(stack)
            while stack:
                for nxt in nfa.eps[stack.pop()]:
                    if nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
            return frozenset(seen)

        dead: frozenset[int] = frozenset()
        index: dict[frozenset[int], int] = {dead: 0}
        order: list[frozenset[int]] = [dead]
        first = closure([start])
        index[first] = 1
        order.append(first)
        rows: list[list[int]] = []
        i = 0
        while i < len(order):
            current = order[i]
            row = []
            for digit in range(10):
                targets = [to for s in current for digits, to in nfa.moves[s] if digit in digits]
                target = closure(targets) if targets else dead
                if target not in index:
                    index[target] = len(order)
                    order.append(target)
                row.append(index[target])
            rows.append(row)
            i += 1
        self.transitions = np.array(rows, dtype=np.int32)
        self.accepting = np.array([bool(s & finals) for s in order], dtype=bool)
        self.start = 1
        # Memos: the state after each k-digit prefix, and per remaining length r whether every /
        # no string of r more digits is accepted from each state.
        self._states: dict[int, npt.NDArray[np.int32]] = {}
        self._all: list[npt.NDArray[np.bool_]] = [self.accepting]
        self._none: list[npt.NDArray[np.bool_]] = [~self.accepting]

    def fullmatch(self, digits: str) -> bool:
        """Whether the digit string matches (a reference for tests)."""
        state = self.start
        for char in digits:
            state = int(self.transitions[state, ord(char) - 48])
        return bool(self.accepting[state])

    def prefix_table(self, length: int, key_digits: int = KEY_DIGITS) -> Table:
        """MATCH / NO_MATCH / UNDECIDED for every ``key_digits``-digit prefix of a ``length``-digit
        string, indexed by the prefix read as an integer."""
        if not 0 < key_digits <= length:
            raise ValueError("key_digits must be between 1 and length")
        remaining = length - key_digits
        while len(self._all) <= remaining:
            self._all.append(np.asarray(self._all[-1][self.transitions].all(axis=1), dtype=bool))
            self._none.append(np.asarray(self._none[-1][self.transitions].all(axis=1), dtype=bool))
        states = self._states_after(key_digits)
        table = np.full(states.shape, UNDECIDED, dtype=np.int8)
        table[self._all[remaining][states]] = MATCH
        table[self._none[remaining][states]] = NO_MATCH
        return table

    def _states_after(self, key_digits: int) -> npt.NDArray[np.int32]:
        found = self._states.get(key_digits)
        if found is None:
            found = np.array([self.start], dtype=np.int32)
            for _ in range(key_digits):
                # Row-major reshape keeps prefix order: prefix p then digit d lands at 10*p + d.
                found = self.transitions[found].reshape(-1)
            self._states[key_digits] = found
        return found


def table_and(a: Table, b: Table) -> Table:
    """Three-valued AND of two tables (undecided stays undecided unless the other says no)."""
    out = np.full(a.shape, UNDECIDED, dtype=np.int8)
    out[(a == MATCH) & (b == MATCH)] = MATCH
    out[(a == NO_MATCH) | (b == NO_MATCH)] = NO_MATCH
    return out
