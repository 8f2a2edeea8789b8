"""The plan as a pull-request comment: verdict and counts first, destroys called out,
details collapsible, and what the plan was computed against at the bottom."""

from __future__ import annotations

import html

from dsdb_plan.plan import SUMMARY_ORDER, Action, ActionType, Plan, counted


def _text(text: str) -> str:
    """Reasons as plain text in a comment: table names may hold markdown or HTML syntax, and
    two estimated counts (`~12 rows`) on one line would strike through the text between."""
    escaped = html.escape(text).replace("|", "\\|").replace("`", "\\`").replace("*", "\\*")
    return escaped.replace("~", "\\~")


def _details(action: Action) -> list[str]:
    symbol = action.type.symbol.strip() or "·"
    summary = f"<code>{symbol}</code> <code>{action.key}</code> — {action.type.value}"
    body = [f"- {_text(reason)}" for reason in action.reasons]
    if action.depends_on:
        body.append(f"- after: {', '.join(f'`{d}`' for d in action.depends_on)}")
    return ["<details>", f"<summary>{summary}</summary>", "", *body, "", "</details>"]


def render_markdown(plan: Plan) -> str:
    counts = plan.counts()
    destructive = plan.destructive
    if not plan.has_changes:
        verdict = "✅ **No changes.** Reality matches the manifest."
    elif destructive:
        consent = "needs" if len(destructive) == 1 else "need"
        verdict = (
            f"⚠️ **{plan.summary()}** {counted(len(destructive), 'destructive action')} "
            f"{consent} consent."
        )
    else:
        verdict = f"📝 **{plan.summary()}**"
    lines = ["## dsdb plan", "", verdict, ""]
    if destructive:
        lines += ["> [!WARNING]", "> **Destructive actions** — these delete or overwrite data:"]
        for action in destructive:
            reasons = "; ".join(_text(reason) for reason in action.reasons)
            lines.append(f"> - `{action.key}` ({action.type.value}): {reasons}")
        lines.append("")
    if plan.has_changes:
        lines += ["| action | count |", "| --- | ---: |"]
        lines += [f"| {t.value} | {counts[t]} |" for t in SUMMARY_ORDER if counts[t]]
        if counts[ActionType.NOOP]:
            lines.append(f"| unchanged | {counts[ActionType.NOOP]} |")
        lines.append("")
    lines += [f"- `{old}` is now `{new}` (moved; no data is touched)" for old, new in plan.moves]
    if plan.moves:
        lines.append("")
    for warning in plan.warnings:
        lines.append(f"> **Warning:** {_text(warning)}")
    if plan.warnings:
        lines.append("")
    lines += [f"- read to find changes: {_text(check)}" for check in plan.checks]
    if plan.checks:
        lines.append("")
    for action in [*destructive, *[a for a in plan.changes if not a.destructive]]:
        lines += _details(action)
    lines += [
        "",
        f"<sub>manifest digest `{plan.manifest_digest[:12]}` · state serial "
        f"{plan.state_serial} · lineage `{plan.state_lineage[:8] or 'new'}`</sub>",
    ]
    return "\n".join(lines) + "\n"
