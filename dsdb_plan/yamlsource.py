"""Safe YAML loading that remembers where every value came from.

PyYAML silently keeps the last of two duplicate keys, expands aliases without limit and
recurses once per level of nesting; all are hazards in a reviewed manifest. This loader
composes the node graph with the safe loader, refusing nesting deeper than any manifest
needs, then builds plain data itself: duplicate keys are errors, aliases are expanded under a
budget (so a "billion laughs" document fails fast), a tagged scalar that does not parse
(`!!int abc`) is a located problem, and each value's line and column are recorded by its
path for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

import yaml

from dsdb_plan.errors import ManifestError, Problem

Path = tuple[str | int, ...]
_MAX_NODES = 100_000
# A manifest is a handful of levels deep; far below where Python's recursion would stop.
_MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


@dataclass
class Source:
    """Plain data loaded from YAML, with the position of each path in it."""

    file: str
    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int] | None:
        """Line and column (1-based) of `path`, or of its closest located ancestor."""
        table = self.key_positions if key else self.positions
        if key and path in table:
            return table[path]
        for end in range(len(path), -1, -1):
            if path[:end] in self.positions:
                return self.positions[path[:end]]
        return None

    def problem(self, path: Path, message: str, *, key: bool = False) -> Problem:
        line_col = self.locate(path, key=key)
        line, column = line_col if line_col else (None, None)
        return Problem(message=message, path=path, file=self.file, line=line, column=column)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


_TOO_DEEP = f"values nested more than {_MAX_DEPTH} levels deep; refusing to load"


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__(_TOO_DEEP)
        self.problem_mark = mark


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing nesting past `_MAX_DEPTH` before it recurses that far."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > _MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _tag_name(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


class _Builder:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.constructor = yaml.constructor.SafeConstructor()
        self.visited = 0
        self.open: list[yaml.Node] = []  # the collections being built, outermost first
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: Path, depth: int = 1) -> Any:
        self.visited += 1
        if self.visited > _MAX_NODES:
            self._refuse(
                "document expands to too many values (nested aliases?); refusing to load",
                path,
                node,
            )
        if node in self.open:
            self._refuse("an alias inside the value it names (it would contain itself)", path, node)
        if depth > _MAX_DEPTH:  # aliases can nest deeper than the text does
            self._refuse(_TOO_DEEP, path, node)
        self.source.positions.setdefault(path, _mark(node))
        if not self._known_tag(node, path):
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self.open.append(node)
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth)
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        finally:
            self.open.pop()

    def _refuse(self, message: str, path: Path, node: yaml.Node) -> NoReturn:
        """Stop building: at the key that holds the value when there is one (an alias's
        node is marked where its anchor is, not where it is used)."""
        line, column = self.source.key_positions.get(path) or _mark(node)
        problem = Problem(message, path, self.source.file, line, column)
        raise ManifestError([*self.problems, problem])

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        """The scalar's value; one that its tag cannot parse (`!!int abc`) is a problem."""
        try:
            return self.constructor.construct_object(node, deep=True)
        except Exception:  # PyYAML's constructors raise whatever int(), float() or date() do
            self.problems.append(
                Problem(
                    f"{node.value!r} is not a valid {_tag_name(node.tag)} value",
                    path,
                    self.source.file,
                    *_mark(node),
                )
            )
            return None

    def _known_tag(self, node: yaml.Node, path: Path) -> bool:
        """Refuse tags safe loading cannot build (`!!python/object`, `!custom`), all of them."""
        if isinstance(node, yaml.CollectionNode):
            known = node.tag in _COLLECTION_TAGS
        else:
            known = node.tag in self.constructor.yaml_constructors
        if not known:
            self.problems.append(
                Problem(
                    f"unsupported YAML tag '{_tag_name(node.tag)}'",
                    path,
                    self.source.file,
                    *_mark(node),
                )
            )
        return known

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.update(self._merge_sources(value_node, path, depth))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    Problem("keys must be plain scalars", path, self.source.file, *_mark(key_node))
                )
                continue
            if not self._known_tag(key_node, path):
                continue
            key = self._scalar(key_node, path)
            if not isinstance(key, str | int | float | bool) and key is not None:
                self.problems.append(
                    Problem("keys must be plain scalars", path, self.source.file, *_mark(key_node))
                )
                continue
            child: Path = (*path, key if isinstance(key, str | int) else str(key))
            if key in result:
                first_line = self.source.key_positions[child][0]
                self.problems.append(
                    Problem(
                        f"duplicate key '{key}' (first defined on line {first_line})",
                        child,
                        self.source.file,
                        *_mark(key_node),
                    )
                )
                continue
            self.source.key_positions[child] = _mark(key_node)
            result[key] = self.build(value_node, child, depth + 1)
        return {**merged, **result}

    def _merge_sources(self, node: yaml.Node, path: Path, depth: int) -> dict[Any, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[Any, Any] = {}
        for source in reversed(sources):  # earlier sources win, as the YAML merge spec says
            value = self.build(source, path, depth + 1)
            if not isinstance(value, dict):
                self.problems.append(
                    Problem("'<<' merges only mappings", path, self.source.file, *_mark(source))
                )
                continue
            merged.update(value)
        return merged


def _in_users_terms(reason: str, mark: yaml.Mark | None, context: yaml.Mark | None) -> str | None:
    """The parser's words for the usual indentation mistakes, said as the user made them."""
    if reason.startswith("expected <block end>") and mark is not None and context is not None:
        return (
            f"bad indentation: this line starts at column {mark.column + 1}, but the keys it "
            f"sits among (from line {context.line + 1}) start at column {context.column + 1}; "
            "keys of one mapping line up, and a key's own fields go further in than the key"
        )
    if reason == "mapping values are not allowed here":
        return (
            "a key cannot start here: it is indented under a line that already has a value, or "
            "the line above lacks its ':'; line the key up with the keys beside it (and quote "
            "a value that contains ': ')"
        )
    if "'\\t'" in reason:
        return f"{reason} (indent with spaces: YAML does not allow tabs)"
    return None


def _unquoted_reference(reason: str, mark: yaml.Mark | None, text: str) -> str | None:
    """A `${...}` left bare inside `{...}` or `[...]`, where YAML reads its `{` as a mapping."""
    if mark is None or not reason.endswith("but got '{'"):
        return None
    lines = text.split("\n")
    line = lines[mark.line] if mark.line < len(lines) else ""
    if line[mark.column - 1 : mark.column] != "$":
        return None
    return (
        "a ${...} reference inside {...} or [...] must be quoted, as in "
        '{password: "${env:PGPASSWORD}"} (YAML reads its { as the start of a mapping)'
    )


def _yaml_problem(file: str, error: yaml.YAMLError, text: str) -> Problem:
    if isinstance(error, yaml.reader.ReaderError):  # a forbidden character: no mark, a position
        before = text[: error.position]
        line = before.count("\n") + 1
        column = error.position - (before.rfind("\n") + 1) + 1
        char = error.character
        shown = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        return Problem(f"invalid YAML: character {shown} is not allowed", (), file, line, column)
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    reason = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = "invalid YAML: " + (
        _in_users_terms(reason, mark, getattr(error, "context_mark", None))
        or _unquoted_reference(reason, mark, text)
        or reason + (f" ({context})" if context else "")
    )
    if mark is None:
        return Problem(message, (), file, 1, 1)
    return Problem(message, (), file, mark.line + 1, mark.column + 1)


def load_yaml(text: str | bytes, file: str) -> Source:
    """Parse `text` into a `Source`; unreadable YAML raises `ManifestError`.

    Duplicate keys and other problems that do not stop parsing are left in
    `Source.problems`, so they are reported together with what later stages find.
    """
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            before = raw[: error.start]
            line = before.count(b"\n") + 1
            column = error.start - (before.rfind(b"\n") + 1) + 1
            raise ManifestError(
                [Problem("file is not UTF-8 text", (), file, line, column)]
            ) from None
    source = Source(file=file, data=None)
    try:
        node = _Loader(text).get_single_node()
    except yaml.YAMLError as error:
        raise ManifestError([_yaml_problem(file, error, text)]) from None
    if node is None:
        raise ManifestError([Problem("manifest is empty", (), file, 1, 1)])
    builder = _Builder(source)
    try:
        source.data = builder.build(node, ())
    except yaml.YAMLError as error:
        raise ManifestError([*builder.problems, _yaml_problem(file, error, text)]) from None
    source.problems = builder.problems
    return source
