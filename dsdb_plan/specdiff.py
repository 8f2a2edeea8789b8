"""Human-readable differences between two recorded specs, via deepdiff.

Values read as the user wrote them in the manifest (YAML flow style: `FR → {in: [FR, GB]}`):
recorded specs hold every model field, unset ones as null, which are left out first so a
change never shows as a dump of the model's defaults.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any

import yaml

from dsdb_plan.sigint import python_keeps_ctrl_c

if TYPE_CHECKING:
    from deepdiff import DeepDiff


_IMPORTING = threading.Lock()


@cache
def _deepdiff() -> type[DeepDiff]:
    """DeepDiff, imported when a spec changed: with polars, which deepdiff imports when it
    is installed, it takes most of a plan's start-up otherwise."""
    # One thread at a time: a second one would take polars' handler for Python's and put
    # it back last (resources are planned in parallel threads).
    with _IMPORTING, python_keeps_ctrl_c():  # polars takes SIGINT over when imported
        from deepdiff import DeepDiff

    return DeepDiff


def _path(node: Any) -> str:
    return ".".join(str(part) for part in node.path(output_format="list"))


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    text: str = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=1 << 30, allow_unicode=True
    )
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _set_only(value: Any) -> Any:
    """`value` without the fields left unset (null) in any mapping it holds."""
    if isinstance(value, dict):
        return {key: _set_only(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_set_only(item) for item in value]
    return value


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Lines like `keep: 7 → 3`, `tables: added flights`, sorted; empty when equal."""
    diff = _deepdiff()(_set_only(old), _set_only(new), ignore_order=False, view="tree")
    lines: list[str] = []
    for node in [*diff.get("values_changed", []), *diff.get("type_changes", [])]:
        lines.append(f"{_path(node)}: {_show(node.t1)} → {_show(node.t2)}")
    for node in diff.get("dictionary_item_added", []):
        lines.append(f"{_path(node)}: set to {_show(node.t2)}")
    for node in diff.get("dictionary_item_removed", []):
        lines.append(f"{_path(node)}: removed (was {_show(node.t1)})")
    for node in diff.get("iterable_item_added", []):
        lines.append(f"{_path(node.up)}: added {_show(node.t2)}")
    for node in diff.get("iterable_item_removed", []):
        lines.append(f"{_path(node.up)}: removed {_show(node.t1)}")
    return sorted(lines)
