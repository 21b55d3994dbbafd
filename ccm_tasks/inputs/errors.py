"""Errors that stop a campaign's inputs from loading. Bad *rows* are never errors: they are rejects.

::

    InputError                 anything in a campaign's inputs that stops the campaign
    +-- DefinitionError        the campaign definition (YAML) is invalid: file, dotted key, what is allowed
    +-- InputFileError         a spreadsheet or roster cannot be used as a whole: file (and sheet)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class InputError(Exception):
    """Base of every error that stops a campaign's inputs from loading."""


@dataclass(frozen=True)
class DefinitionProblem:
    """One problem in a definition: the dotted key (``window.start``) and what is wrong."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class DefinitionError(InputError):
    """The campaign definition is invalid; names the file and every offending key."""

    def __init__(self, path: Path | str | None, problems: list[DefinitionProblem]) -> None:
        self.path = Path(path) if path is not None else None
        self.problems = problems
        where = f"{self.path}: " if self.path is not None else ""
        if len(problems) == 1:
            text = f"{where}{problems[0]}"
        else:
            text = f"{where}{len(problems)} problems: " + "; ".join(str(p) for p in problems)
        super().__init__(text)


class InputFileError(InputError):
    """A customer, agent or do-not-call file cannot be used at all (empty, unreadable, no phone
    column, password-protected...); names the file and, for workbooks, the sheet."""

    def __init__(self, path: Path | str, problem: str, *, sheet: str | None = None) -> None:
        self.path = Path(path)
        self.sheet = sheet
        self.problem = problem
        where = f"{self.path}" + (f" (sheet {sheet!r})" if sheet else "")
        super().__init__(f"{where}: {problem}")
