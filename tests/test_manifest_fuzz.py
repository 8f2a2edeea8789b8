"""No manifest input crashes dsdb: whatever the bytes, loading either gives a manifest or a
`ManifestError` whose every problem has a line.

Generated YAML trees (shaped like manifests, so they reach validation), the valid manifests of
examples/ and tests/manifests/ mutated as text and as data, tags that do not parse, deep
nesting, huge and odd scalars and invalid bytes. The default run is quick and always the same
examples; `DSDB_FUZZ_PROFILE=long` searches much longer, with fresh examples each run
(`DSDB_FUZZ_EXAMPLES` per test, 5,000 by default).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dsdb_plan import redact
from dsdb_plan.errors import ManifestError
from dsdb_plan.manifest import parse_manifest

ROOT = Path(__file__).parent.parent
CORPUS = sorted(
    [*ROOT.glob("examples/*/dsdb.yaml"), *ROOT.glob("tests/manifests/**/*.yaml")],
    key=str,
)
TEXTS = [path.read_bytes() for path in CORPUS]


def _valid(text: bytes) -> bool:
    try:
        parse_manifest(text, env={})
    except ManifestError:
        return False
    return True


@functools.cache
def _valid_mappings() -> list[dict[str, Any]]:
    """The valid manifests of the corpus as data, to replace their values. Loaded at the
    first draw, inside a test, so the secrets they register stay there."""
    return [yaml.safe_load(text) for text in TEXTS if _valid(text)]


MAPPINGS = st.deferred(lambda: st.sampled_from(_valid_mappings()))

settings.register_profile(
    "quick",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("DSDB_FUZZ_EXAMPLES", "5000")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(os.environ.get("DSDB_FUZZ_PROFILE", "quick"))

# Words a manifest uses, so generated trees get past "unknown field" into the models.
WORDS = [
    "version",
    "settings",
    "state",
    "backup_root",
    "lock_timeout",
    "variables",
    "type",
    "default",
    "sensitive",
    "connections",
    "driver",
    "database",
    "host",
    "port",
    "user",
    "password",
    "url",
    "protect",
    "create_database",
    "backups",
    "connection",
    "keep",
    "tables",
    "migrations",
    "from",
    "to",
    "mode",
    "follow",
    "where",
    "in",
    "gt",
    "columns",
    "rename_to",
    "key",
    "incremental",
    "cursor",
    "schema",
    "batch_size",
    "restores",
    "backup",
    "backup_id",
    "path",
    "replace_existing",
    "teardowns",
    "drop_database",
    "final_backup",
    "depends_on",
    "moved",
    "local",
    "prod",
    "sqlite",
    "postgresql",
    "mariadb",
    "mysql",
    "upsert",
    "mirror",
    "parents",
    "all",
    "backup.b",
    "migration.m",
    "string",
    "integer",
]
TOKENS = [
    "!!float x",
    "!!int abc",
    "!!bool maybe",
    "!!timestamp nope",
    "!!timestamp 2020-13-45",
    "!!binary '%%%'",
    "!!str",
    "!!map",
    "!!seq",
    "!!null x",
    "!!python/object:os.system",
    "!custom",
    "&a",
    "*a",
    "*missing",
    "<<: *a",
    "<<: [1]",
    "? [a]",
    "[",
    "]",
    "{",
    "}",
    ":",
    "- ",
    "\t",
    "'",
    '"',
    "%YAML 1.1",
    "---",
    "...",
    "${env:DSDB_FUZZ_UNSET}",
    "${env:HOME:-x}",
    "${var:env}",
    "${var:",
    "$${",
    "${}",
    "1e999",
    ".nan",
    "-.inf",
    "0x1F",
    "0o17",
    "99999999999999999999999999999999",
    "2020-02-30",
    "~",
    "null",
    "yes",
    "version: 1",
]


class Tagged:
    """A scalar written with an explicit tag (`!!int abc`), which safe_dump would quote."""

    def __init__(self, tag: str, value: str) -> None:
        self.tag, self.value = tag, value


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Tagged, lambda dumper, t: dumper.represent_scalar(t.tag, t.value))
CORE = "tag:yaml.org,2002:"
TAGS = [f"{CORE}{name}" for name in ("float", "int", "bool", "timestamp", "binary", "null")]
TAGS += [f"{CORE}str", f"{CORE}python/object:os.system", "!custom", "tag:example.com,2000:x"]
TAGGED = st.builds(
    Tagged,
    st.sampled_from(TAGS),
    st.one_of(
        st.sampled_from(["x", "abc", "maybe", "nope", "2020-13-45", "2020-02-30", "%%%", "1"]),
        st.text(max_size=12),
    ),
)
SCALARS = st.one_of(
    TAGGED,
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS + TOKENS),
    st.text(max_size=40),
    st.text(alphabet="${}:-ab_", max_size=20),
    st.builds(lambda n: "x" * n, st.integers(0, 200_000)),
)
KEYS = st.one_of(st.sampled_from(WORDS), st.text(max_size=12), st.integers(), st.booleans())
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(KEYS, children, max_size=6),
    ),
    max_leaves=40,
)


@pytest.fixture(autouse=True)
def _secrets_stay_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading registers every password met as a secret, for the whole process; generated
    ones ("local", "version") must not be masked in the output of the tests after these."""
    monkeypatch.setattr(redact, "_secrets", set(redact._secrets))


def _check(text: str | bytes) -> None:
    """Loading `text` gives a manifest or located problems; anything else fails the test."""
    try:
        parse_manifest(text, "fuzz.yaml", env={"HOME": "/home/fuzz"})
    except ManifestError as error:
        unlocated = [str(p) for p in error.problems if p.line is None or p.file != "fuzz.yaml"]
        assert error.problems
        assert not unlocated, unlocated


def _dump(data: Any, flow: bool) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, default_flow_style=flow, allow_unicode=True, sort_keys=False
    )


SECTIONS = ["settings", "variables", "connections", "backups", "migrations", "restores"]
SECTIONS += ["teardowns", "moved"]


# The crashes issue 14 reported, kept as examples that every run tries.
@example(section="variables", tree={"x": {"type": {"a": 1}}}, flow=False)
@example(section="variables", tree={"x": {"type": ["string"]}}, flow=True)
@example(section="settings", tree={"lock_timeout": Tagged(f"{CORE}float", "x")}, flow=False)
@example(section="backups", tree={"b": {"keep": Tagged(f"{CORE}int", "abc")}}, flow=False)
@example(section="connections", tree={"c": {"protect": Tagged(f"{CORE}bool", "maybe")}}, flow=True)
@example(section="variables", tree=[Tagged(f"{CORE}timestamp", "nope")], flow=False)
@example(section="moved", tree=Tagged(f"{CORE}timestamp", "2020-13-45"), flow=False)
@PROFILE
@given(
    section=st.sampled_from(SECTIONS),
    tree=st.one_of(TREES, st.dictionaries(st.sampled_from(WORDS), TREES, max_size=3)),
    flow=...,
)
def test_generated_trees_load_or_give_located_problems(section: str, tree: Any, flow: bool) -> None:
    _check(_dump(tree, flow))
    _check(_dump({"version": 1, section: tree}, flow))
    _check(_dump({"version": 1, section: {"n": tree}}, flow))


@st.composite
def _text_mutation(draw: st.DrawFn) -> bytes:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split(b"\n")
        at = draw(st.integers(0, len(lines) - 1))
        line = lines[at]
        kind = draw(
            st.sampled_from(
                ["delete", "duplicate", "indent", "dedent", "token", "cut", "bytes", "value"]
            )
        )
        if kind == "delete":
            del lines[at]
        elif kind == "duplicate":
            lines.insert(at, line)
        elif kind == "indent":
            lines[at] = b" " * draw(st.integers(1, 5)) + line
        elif kind == "dedent":
            lines[at] = line.lstrip(b" ")
        elif kind == "token":
            column = draw(st.integers(0, len(line)))
            token = draw(st.sampled_from(TOKENS)).encode()
            lines[at] = line[:column] + token + b" " + line[column:]
        elif kind == "cut":
            lines = lines[: at + 1]
            lines[at] = line[: draw(st.integers(0, len(line)))]
        elif kind == "bytes":
            column = draw(st.integers(0, len(line)))
            lines[at] = line[:column] + draw(st.binary(min_size=1, max_size=4)) + line[column:]
        else:
            key, colon, _ = line.partition(b":")
            if colon:
                value = _dump(draw(SCALARS), True).splitlines()[0].encode()
                lines[at] = key + b": " + value
        text = b"\n".join(lines)
    return text


@PROFILE
@given(text=_text_mutation())
def test_mutated_manifests_load_or_give_located_problems(text: bytes) -> None:
    _check(text)


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, (*path, i))
    return found


def _replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {k: _replaced(v, rest, value) if k == head else v for k, v in data.items()}
    return [_replaced(v, rest, value) if i == head else v for i, v in enumerate(data)]


@PROFILE
@given(data=st.data(), manifest=MAPPINGS, flow=...)
def test_manifests_with_a_value_replaced_load_or_give_located_problems(
    data: st.DataObject, manifest: dict[str, Any], flow: bool
) -> None:
    path = data.draw(st.sampled_from(_paths(manifest)))
    _check(_dump(_replaced(manifest, path, data.draw(TREES)), flow))


@PROFILE
@given(
    depth=st.integers(1, 600),
    opener=st.sampled_from(["[", "{a: ", "- ", "&x [", "!!seq ["]),
    indent=...,
)
def test_deep_nesting_loads_or_gives_located_problems(
    depth: int, opener: str, indent: bool
) -> None:
    if opener == "- ":
        body = "".join(("  " * i if indent else "") + "-\n" for i in range(depth)) + "x\n"
        _check("version: 1\nconnections:\n" + body)
        return
    closer = "]" if opener.endswith("[") else "}"
    _check("version: 1\nconnections: " + opener * depth + "1" + closer * depth + "\n")


def test_aliases_that_contain_themselves_give_located_problems() -> None:
    for text in ("version: 1\nconnections: &a [*a]\n", "version: 1\nconnections: &a {b: *a}\n"):
        try:
            parse_manifest(text, "fuzz.yaml")
        except ManifestError as error:
            assert "an alias inside the value it names" in error.message
            assert error.problems[0].line == 2
        else:
            raise AssertionError("a value that contains itself loaded")


@PROFILE
@given(raw=st.binary(max_size=300), prefix=st.sampled_from([b"", b"version: 1\n", b"\xef\xbb\xbf"]))
def test_arbitrary_bytes_load_or_give_located_problems(raw: bytes, prefix: bytes) -> None:
    _check(prefix + raw)
