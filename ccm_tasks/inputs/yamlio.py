"""YAML as people write it in campaign files, without YAML 1.1's surprises.

PyYAML follows YAML 1.1, where ``21:00`` is the integer 1260 (base 60) and ``0123`` is octal 83.
Times and phone numbers are exactly what campaign files contain, so this loader reads integers the
YAML 1.2 way (decimal, ``0x``, ``0o`` only) and leaves everything else a string. A leading ``+``
keeps a value a string too: ``+6591234567`` read as the integer 6591234567 would lose its country
code. Duplicate keys, which PyYAML silently lets the last one win, are an error: a second ``retry:``
block is always a mistake.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping repeats a key."""


class CampaignYamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 integers and floats, and duplicate keys refused."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _value in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue
                if key in seen:
                    raise DuplicateKeyError(
                        f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                        f"(first at line {seen[key]})"
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


CampaignYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CampaignYamlLoader.add_implicit_resolver(
    _INT_TAG,
    re.compile(r"^(?:-?(?:0|[1-9][0-9_]*)|0o[0-7_]+|0x[0-9a-fA-F_]+)$"),
    list("-0123456789"),
)
CampaignYamlLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:-?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|-?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+][0-9]+)?"
        r"|-?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-0123456789."),
)


def _construct_yaml12_int(loader: yaml.SafeLoader, node: Node) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text)


CampaignYamlLoader.add_constructor(_INT_TAG, _construct_yaml12_int)


def load_yaml_text(text: str) -> Any:
    """Parse one YAML document with :class:`CampaignYamlLoader`."""
    return yaml.load(text, Loader=CampaignYamlLoader)  # noqa: S506 - a SafeLoader subclass


def compose_yaml(path: Path) -> tuple[Any, Node | None]:
    """Parse a YAML file; return the data and its node tree (for line numbers)."""
    loader = CampaignYamlLoader(path.read_text(encoding="utf-8-sig"))
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node
