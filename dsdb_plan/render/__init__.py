"""Plan renderers by format name: text for terminals, markdown for pull requests, json."""

from __future__ import annotations

from collections.abc import Callable

from dsdb_plan.errors import DsdbError
from dsdb_plan.plan import Plan
from dsdb_plan.render.markdown import render_markdown
from dsdb_plan.render.text import render_text

Renderer = Callable[[Plan, bool], str]

RENDERERS: dict[str, Renderer] = {
    "text": render_text,
    "markdown": lambda plan, _color: render_markdown(plan),
    "json": lambda plan, _color: plan.to_json(),
}


def render(plan: Plan, format: str, *, color: bool = False) -> str:
    try:
        renderer = RENDERERS[format]
    except KeyError:
        raise DsdbError(f"unknown plan format '{format}' (text, markdown or json)") from None
    return renderer(plan, color)
