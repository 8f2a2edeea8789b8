"""The plan as terminal text: symbols, colour when asked, destroys in their own section."""

from __future__ import annotations

import click

from dsdb_plan.plan import Action, ActionType, Plan

_COLORS = {
    ActionType.CREATE: "green",
    ActionType.UPDATE: "yellow",
    ActionType.RESYNC: "cyan",
    ActionType.REPLACE: "red",
    ActionType.DESTROY: "red",
}


def _action_lines(action: Action, color: bool) -> list[str]:
    head = f"{action.type.symbol:>3} {action.key} ({action.type.value})"
    if color:
        head = click.style(head, fg=_COLORS.get(action.type), bold=action.destructive)
    lines = [head]
    lines += [f"      {reason}" for reason in action.reasons]
    if action.depends_on:
        lines.append(f"      after: {', '.join(action.depends_on)}")
    return lines


def render_text(plan: Plan, color: bool = False) -> str:
    safe = [a for a in plan.changes if not a.destructive]
    destructive = plan.destructive
    lines: list[str] = []
    if plan.moves:
        lines.append("dsdb will record these renames (no data is touched):")
        lines.append("")
        lines += [f"  → {old} is now {new}" for old, new in plan.moves]
        lines.append("")
    if safe:
        lines.append("dsdb will perform these actions:")
        lines.append("")
        for action in safe:
            lines += _action_lines(action, color)
        lines.append("")
    if destructive:
        title = "Destructive actions: these delete or overwrite data"
        lines.append(click.style(title, fg="red", bold=True) if color else title)
        lines.append("")
        for action in destructive:
            lines += _action_lines(action, color)
        lines.append("")
    for warning in plan.warnings:
        lines.append(f"Warning: {warning}")
    if plan.warnings:
        lines.append("")
    if plan.checks:
        lines.append("Read to find changes (no cheaper sign of change there):")
        lines += [f"  {check}" for check in plan.checks]
        lines.append("")
    unchanged = plan.counts()[ActionType.NOOP]
    summary = plan.summary()
    if plan.has_changes and unchanged:
        summary += f" ({unchanged} unchanged)"
    lines.append(click.style(summary, bold=True) if color else summary)
    return "\n".join(lines) + "\n"
