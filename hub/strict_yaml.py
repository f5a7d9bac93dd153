"""The YAML reader for every document a user or an admin hands gpulab (the policy file, a job
spec): YAML's safe subset, narrowed to what JSON can say.

- A duplicate key is an error: a repeated key silently replacing the first is a common
  editing mistake.
- Anchors and aliases (``&name`` / ``*name``) are refused: they let a few bytes expand into a
  huge document ("billion laughs"), and neither document needs them.
- Values are JSON types only: timestamps stay strings, and the tags that build other Python
  types (``!!binary``, ``!!set``, ``!!omap``, ``!!pairs``, ``!!timestamp``) are refused.

:func:`load_yaml` raises :class:`yaml.YAMLError` (a :class:`yaml.MarkedYAMLError` with line and
column where there is one); each caller words it for its own reader.
"""

from __future__ import annotations

import contextlib
from typing import Any

import yaml

__all__ = ["StrictLoader", "load_yaml"]

_NON_JSON_TAGS = ("binary", "omap", "pairs", "set", "timestamp")
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class StrictLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` without aliases, duplicate keys or non-JSON types."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases (*name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:  # type: ignore[override]
        self.flatten_mapping(node)  # merge keys (<<) count as keys written here
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            with contextlib.suppress(TypeError):  # an unhashable key is reported by SafeLoader
                if key in seen:
                    first = seen[key].start_mark
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {first.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


# Class attributes are shared with SafeLoader: give StrictLoader its own copies before editing.
StrictLoader.yaml_constructors = {
    tag: constructor
    for tag, constructor in yaml.SafeLoader.yaml_constructors.items()
    if tag not in {f"tag:yaml.org,2002:{name}" for name in _NON_JSON_TAGS}
}
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """One YAML document, read by :class:`StrictLoader`. Raises :class:`yaml.YAMLError`."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
