"""Campaign definitions the console reads and writes: ordinary YAML files under ``campaigns/``.

The console writes ``campaigns/<name>/<name>.yaml`` with its uploads beside it in ``uploads/``;
``ccm run``, ``ccm validate`` and ``ccm serve`` read it like any other definition, and the console
shows definitions written by hand too. Every file written is validated first
(:meth:`CampaignDefinition.from_mapping`), so the console never leaves an invalid definition.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ccm_tasks.inputs import CampaignDefinition, DefinitionError, load_definition
from ccm_tasks.inputs.definition import WEEKDAYS

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Campaign names the console accepts (the definition's rule, with a length bound)."""


CONSOLE_HEADER = "# Campaign"
"""How the first line of a definition the console wrote begins (``# Campaign <name>: written by...``)."""


class NoSuchDefinition(LookupError):
    """No definition of that campaign under the campaigns folder."""


@dataclass(frozen=True)
class KnownFile:
    """A roster or do-not-call list another definition already uses (offered for reuse)."""

    path: Path
    label: str  # as people see it: "demo/agents.csv"


class Workspace:
    """The campaigns folder: where definitions are found and where the console writes new ones."""

    def __init__(self, campaigns_dir: Path, template: Path | None = None) -> None:
        self.campaigns_dir = campaigns_dir
        self.template = template

    def folder_for(self, name: str) -> Path:
        """``campaigns/<name>/`` (the name is checked: never a path from outside)."""
        if not NAME_RE.match(name):
            raise NoSuchDefinition(f"{name!r} is not a campaign name")
        return self.campaigns_dir / name

    def path_for(self, name: str) -> Path:
        """Where the campaign's definition is: the console's own file, else any definition of
        that name under the campaigns folder."""
        own = self.folder_for(name) / f"{name}.yaml"
        if own.exists():
            return own
        for path, definition in self.definitions():
            if definition.name == name:
                return path
        raise NoSuchDefinition(f"no definition of campaign {name!r} under {self.campaigns_dir}")

    def owns(self, name: str) -> bool:
        """Whether the campaign's definition is one the console wrote (and may rewrite): a file
        written by hand keeps its comments, so the console never rewrites it."""
        path = self.folder_for(name) / f"{name}.yaml"
        try:
            with path.open(encoding="utf-8") as handle:
                return handle.readline().startswith(f"{CONSOLE_HEADER} {name}:")
        except OSError:
            return False

    def load(self, name: str) -> CampaignDefinition:
        """The campaign's definition (raises :class:`DefinitionError` when it is invalid)."""
        return load_definition(self.path_for(name))

    def definitions(self) -> list[tuple[Path, CampaignDefinition]]:
        """Every valid definition under the campaigns folder."""
        found: list[tuple[Path, CampaignDefinition]] = []
        if not self.campaigns_dir.is_dir():
            return found
        for path in sorted(self.campaigns_dir.rglob("*.y*ml")):
            if any(part.startswith(".") for part in path.relative_to(self.campaigns_dir).parts):
                continue
            try:
                found.append((path, load_definition(path)))
            except DefinitionError:
                continue  # a roster in YAML, a scenario, or a definition being fixed by hand
        return found

    def known_rosters(self) -> list[KnownFile]:
        """Agent rosters that existing definitions use."""
        return self._known(lambda d: [d.agents])

    def known_do_not_call(self) -> list[KnownFile]:
        """Do-not-call lists that existing definitions use."""
        return self._known(lambda d: list(d.do_not_call))

    def _known(self, pick: Any) -> list[KnownFile]:
        seen: dict[Path, KnownFile] = {}
        for _path, definition in self.definitions():
            for file in pick(definition):
                resolved = Path(file).resolve()
                if resolved.is_file() and resolved not in seen:
                    try:
                        label = resolved.relative_to(self.campaigns_dir.resolve()).as_posix()
                    except ValueError:
                        label = str(resolved)
                    seen[resolved] = KnownFile(resolved, label)
        return sorted(seen.values(), key=lambda k: k.label)

    def template_settings(self) -> dict[str, Any]:
        """What a new campaign starts from: the template definition's settings (not its files)."""
        template = self.template
        if template is None:
            candidate = self.campaigns_dir / "example.yaml"
            template = candidate if candidate.exists() else None
        if template is None:
            return {}
        try:
            definition = load_definition(template)
        except DefinitionError:
            return {}
        mapping = to_mapping(definition, definition.base_dir)
        return {k: v for k, v in mapping.items()
                if k not in ("name", "description", "customers", "agents", "do_not_call", "ledger",
                             "schedule", "start_at", "end_at", "virtual_number")}

    def write(self, name: str, mapping: Mapping[str, Any], *, by: str) -> CampaignDefinition:
        """Validate ``mapping`` and write it as ``campaigns/<name>/<name>.yaml`` (atomically).

        Raises :class:`DefinitionError` (nothing written) when it is not a valid definition.
        """
        folder = self.folder_for(name)
        path = folder / f"{name}.yaml"
        definition = CampaignDefinition.from_mapping(dict(mapping), base_dir=folder, source=path)
        header = (f"{CONSOLE_HEADER} {name}: written by the ccm console ({by}, "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S %z')}).\n"
                  "# An ordinary definition: `ccm validate` and `ccm run` read it; every key is "
                  "documented in campaigns/example.yaml.\n")
        text = header + yaml.safe_dump(to_mapping(definition, folder), sort_keys=False,
                                       allow_unicode=True, default_flow_style=False)
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{name}.yaml.tmp"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
        return load_definition(path)


def relative(path: Path, folder: Path) -> str:
    """``path`` as the definition in ``folder`` should say it (relative when it can be)."""
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


def to_mapping(definition: CampaignDefinition, folder: Path) -> dict[str, Any]:
    """A definition as the plain mapping a YAML file holds (paths relative to ``folder``)."""
    d = definition
    columns = {k: v for k, v in d.customers.columns.model_dump().items() if v is not None}
    customers: dict[str, Any] = {
        "files": [{"path": relative(f.path, folder), "sheet": f.sheet} for f in d.customers.files]}
    if columns:
        customers["columns"] = columns
    customers["default_region"] = d.customers.default_region
    out: dict[str, Any] = {"name": d.name}
    if d.description:
        out["description"] = d.description
    out["customers"] = customers
    out["agents"] = relative(d.agents, folder)
    if d.do_not_call:
        out["do_not_call"] = [relative(p, folder) for p in d.do_not_call]
    out["virtual_number"] = d.virtual_number
    out["call"] = d.call.model_dump()
    out["retry"] = d.retry.model_dump()
    out["window"] = {"start": f"{d.window.start:%H:%M}", "end": f"{d.window.end:%H:%M}",
                     "timezone": d.window.timezone, "days": list(d.window.days)}
    if d.start_at is not None:
        out["start_at"] = d.start_at.isoformat()
    if d.end_at is not None:
        out["end_at"] = d.end_at.isoformat()
    out["api_budget_per_minute"] = d.api_budget_per_minute
    if d.schedule is not None:
        out["schedule"] = d.schedule.model_dump()
    out["dialer"] = d.dialer.model_dump()
    out["limits"] = d.limits.model_dump()
    out["callbacks"] = d.callbacks.model_dump()
    if d.ledger is not None:
        out["ledger"] = d.ledger if "://" in d.ledger else relative(Path(d.ledger), folder)
    return out


__all__ = ["NAME_RE", "WEEKDAYS", "KnownFile", "NoSuchDefinition", "Workspace", "relative", "to_mapping"]
