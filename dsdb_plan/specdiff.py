"""Human-readable differences between two recorded specs, via deepdiff."""

from __future__ import annotations

from typing import Any

from deepdiff import DeepDiff


def _path(node: Any) -> str:
    return ".".join(str(part) for part in node.path(output_format="list"))


def _show(value: Any) -> str:
    return "(unset)" if value is None else repr(value) if isinstance(value, str) else str(value)


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Lines like `keep: 7 → 3`, `tables: added 'flights'`, sorted; empty when equal."""
    diff = DeepDiff(old, new, ignore_order=False, view="tree", verbose_level=2)
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
