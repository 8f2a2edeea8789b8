"""Load a manifest file into a validated `Manifest`, reporting every problem with its place.

YAML (safe, no duplicate keys) -> interpolation -> pydantic models -> semantic checks.
Problems from every stage are collected and raised together as one `ManifestError`.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from pydantic import BaseModel, ValidationError

from dsdb_plan.connection import Connection
from dsdb_plan.dag import find_cycle
from dsdb_plan.errors import DsdbError, ManifestError, Problem, did_you_mean
from dsdb_plan.graph import ancestors, dependencies, reads_and_writes
from dsdb_plan.interpolate import interpolate
from dsdb_plan.models import NAME_PATTERN, RESOURCE_KINDS, Manifest
from dsdb_plan.redact import redact
from dsdb_plan.yamlsource import Path, Source, load_yaml

DEFAULT_MANIFEST = "dsdb.yaml"


@dataclass(frozen=True)
class LoadedManifest:
    """A validated manifest and where it came from."""

    manifest: Manifest
    path: FilePath
    digest: str

    @property
    def base_dir(self) -> FilePath:
        return self.path.parent

    def resolve(self, relative: str) -> FilePath:
        """A path from the manifest (state file, backup root) made absolute."""
        path = FilePath(relative).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()


def load_manifest(
    path: str | FilePath,
    *,
    variables: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedManifest:
    """Read, interpolate, validate and check the manifest at `path`."""
    file = FilePath(path)
    manifest = parse_manifest(
        _read(file), str(file), base_dir=file.resolve().parent, variables=variables, env=env
    )
    return LoadedManifest(manifest=manifest, path=file.resolve(), digest=manifest_digest(manifest))


def check_structure(
    path: FilePath, *, variables: Mapping[str, str] | None = None
) -> tuple[LoadedManifest, list[Problem]]:
    """`load_manifest` without the environment's secrets, as `dsdb validate` checks a pull
    request: the manifest, and each `${env:NAME}` left unset, where it is used."""
    unset: list[Problem] = []
    file = FilePath(path)
    manifest = parse_manifest(
        _read(file), str(file), base_dir=file.resolve().parent, variables=variables, unset=unset
    )
    loaded = LoadedManifest(manifest=manifest, path=file.resolve(), digest="")
    return loaded, unset


def parse_manifest(
    text: str | bytes,
    file: str = "<manifest>",
    *,
    base_dir: FilePath | None = None,
    variables: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    unset: list[Problem] | None = None,
) -> Manifest:
    """Validate manifest text; raise `ManifestError` listing every problem. Given `unset`,
    an unset `${env:NAME}` is noted there and the structure around it checked all the same."""
    source = load_yaml(text, file)
    if not isinstance(source.data, dict):
        raise ManifestError(
            [source.problem((), "a manifest is a mapping with `version: 1` and sections")]
        )
    data, problems = interpolate(source, env=env, variables=variables, unset_env=unset)
    problems = source.problems + problems
    context = {"base_dir": base_dir or FilePath.cwd()}
    try:
        manifest = Manifest.model_validate(data, context=context)
    except ValidationError as error:
        found = _without_followups(
            _validation_problems(error, source, data), problems + (unset or [])
        )
        stood_in = None if found or not unset else _with_stand_ins(data, unset, context)
        if stood_in is None:
            problems += found or (unset or [])
            problems += _reference_problems(source, data)
            raise ManifestError(_sorted(problems, file)) from None
        manifest = stood_in
    problems += _reference_problems(source, data)
    if not problems:
        problems += _semantic_problems(manifest, source)
    if problems:
        raise ManifestError(_sorted(problems, file))
    return manifest


def _read(file: FilePath) -> bytes:
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise DsdbError(f"manifest not found: {file}") from None
    except IsADirectoryError:
        raise DsdbError(f"manifest path is a folder, not a file: {file}") from None
    except OSError as error:
        raise DsdbError(f"cannot read manifest {file}: {error.strerror}") from None


# What a stand-in replaces; the rest (protect, references, ...) is kept and checked.
_LINK_FIELDS = {"driver", "url", "database", "host", "port", "user", "password", "query"}


def _with_stand_ins(data: Any, unset: list[Problem], context: dict[str, Any]) -> Manifest | None:
    """The manifest with each connection that waits on an unset secret (a url, a port) in
    place of a distinct SQLite file, so what refers to it can still be checked; None when
    a value outside the connections needs one too."""
    names = {p.path[1] for p in unset if len(p.path) > 1 and p.path[0] == "connections"}
    connections = dict(data.get("connections") or {})
    for name in names:
        given = connections[name] if isinstance(connections[name], dict) else {}
        kept = {key: value for key, value in given.items() if key not in _LINK_FIELDS}
        connections[name] = kept | {"driver": "sqlite", "database": f"unset-secrets-of-{name}.db"}
    try:
        return Manifest.model_validate({**data, "connections": connections}, context=context)
    except ValidationError:
        return None


def manifest_digest(manifest: Manifest) -> str:
    """A digest of what the manifest means (secrets masked), for saved plans and state."""
    canonical = json.dumps(manifest.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(redact(canonical).encode()).hexdigest()


def _without_followups(found: list[Problem], earlier: list[Problem]) -> list[Problem]:
    """Drop validation problems at or under a value that already failed to load or
    interpolate, and those of the mapping holding it that name it (`url is not a valid
    URL` beside the variable the url needed)."""
    return [problem for problem in found if not any(_follows(problem, e) for e in earlier)]


def _follows(problem: Problem, cause: Problem) -> bool:
    if not cause.path:
        return False
    if problem.path[: len(cause.path)] == cause.path:
        return True
    parent, field = cause.path[:-1], cause.path[-1]
    return problem.path == parent and problem.message.startswith(f"{field} ")


def _sorted(problems: list[Problem], file: str) -> list[Problem]:
    """In the order of the manifest's lines; then those of its variable files."""
    unique = list(dict.fromkeys(problems))
    return sorted(
        unique,
        key=lambda p: (
            p.file != file,
            p.file or "",
            p.line or 0,
            p.column or 0,
            p.field,
            p.message,
        ),
    )


# -- pydantic errors -> located problems ---------------------------------------------------


def data_path(loc: tuple[Any, ...], data: Any) -> tuple[Path, bool]:
    """Drop pydantic's union/validator tags from `loc`; report whether it reached the data."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not _is_tag(part):
            path.append(part)  # a key that is absent (missing) or extra
            node = None
    return tuple(path), node is not None


def _is_tag(part: str) -> bool:
    return (
        "[" in part
        or part
        in {
            "str",
            "int",
            "float",
            "bool",
            "none",
            "decimal",
            "date",
            "datetime",
            "list",
            "dict",
            "literal",
        }
        or part[:1].isupper()
    )


def _model_at(path: Path) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path`, if any."""
    current: Any = Manifest
    for part in path:
        current = _unwrap_model_or_container(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field(current, part)
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        else:
            return None
    current = _unwrap_model_or_container(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap_model_or_container(annotation: Any) -> Any:
    """From a union, prefer the model, then the mapping, then the list branch."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [_unwrap_model_or_container(a) for a in typing.get_args(annotation)]
        for wanted in (BaseModel, dict, list):
            for option in options:
                is_model = isinstance(option, type) and issubclass(option, BaseModel)
                if wanted is BaseModel and is_model:
                    return option
                if typing.get_origin(option) is wanted:
                    return option
    return annotation


def _field(model: type[BaseModel], key: Any) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _describe(error: Any, path: Path, data: Any, reached: bool) -> tuple[str, bool]:
    """A message for one pydantic error, and whether it points at the key itself."""
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(path[:-1])
        allowed = _field_names(model) if model else []
        hint = (
            _misplaced_connection(path, model)
            or did_you_mean(path[-1], allowed)
            or (f" (expected one of: {', '.join(allowed)})" if allowed else "")
        )
        return f"unknown field '{path[-1]}'{hint}", True
    if kind == "model_type":
        return _not_a_mapping(path, data, reached)
    if kind == "missing":
        return f"missing required field '{path[-1]}'", False
    if kind == "literal_error":
        listed = error["ctx"]["expected"].replace(" or ", ", ").split(",")
        expected = [s.strip().strip("'") for s in listed]
        value = _value_at(data, path) if reached else None
        hint = did_you_mean(value, expected) if isinstance(value, str) else ""
        return f"unknown value {value!r}{hint} (expected one of: {', '.join(expected)})", False
    if kind == "string_pattern_mismatch":
        value = path[-1] if error["loc"][-1] == "[key]" else _value_at(data, path)
        if error["ctx"]["pattern"] == NAME_PATTERN:
            return (
                f"'{value}' is not a valid name: use letters, digits, '_' and '-', "
                "starting with a letter or '_'",
                error["loc"][-1] == "[key]",
            )
        return (
            f"'{value}' is not a resource address: expected kind.name with kind one of "
            + ", ".join(RESOURCE_KINDS),
            False,
        )
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:], False


def _misplaced_connection(path: Path, model: type[BaseModel] | None) -> str:
    """A connection's field in another section's entry: a connection under the wrong heading."""
    if model in (None, Connection) or len(path) < 2 or path[-1] not in _field_names(Connection):
        return ""
    return f" — a connection's field: does '{path[-2]}' belong under `connections:`?"


def _noun(model: type[BaseModel]) -> str:
    """`Connection` -> "connection", `MigrationTable` -> "migration table"."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", model.__name__).lower()


def _not_a_mapping(path: Path, data: Any, reached: bool) -> tuple[str, bool]:
    """Where a mapping of fields was wanted: most often a key at the wrong level."""
    model = _model_at(path)
    noun = _noun(model) if model else "mapping"
    value = _value_at(data, path) if reached else None
    parent = _model_at(path[:-1]) if path else None
    key = path[-1] if path else None
    if model is not None and parent is None and key in _field_names(model):
        # `driver:` beside the connections instead of under one of them.
        return (
            f"'{key}' is a field of a {noun}, not the name of one: indent it under the {noun} "
            "it belongs to",
            True,
        )
    if value is None:
        return f"'{key}' is empty: give its fields indented under it", False
    return f"expected {noun} fields (a mapping), not {type(value).__name__} {value!r}", False


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]
    return data


def _validation_problems(error: ValidationError, source: Source, data: Any) -> list[Problem]:
    by_path: dict[Path, list[tuple[str, bool]]] = {}
    for item in error.errors(include_url=False, include_input=False):
        path, reached = data_path(item["loc"], data)
        by_path.setdefault(path, []).append(_describe(item, path, data, reached))
    problems = []
    for path, messages in by_path.items():
        if any(other[: len(path)] == path and other != path for other in by_path):
            # A union whose branch got deeper names the real mistake; the other branches'
            # "should be a list" would only be noise.
            continue
        if len(messages) > 1 and not any(m.startswith("unknown") for m, _ in messages):
            # A union where every branch failed: one line says what would be accepted.
            kinds = sorted({m.split(",")[0] for m, _ in messages})
            message, key = "invalid value: " + "; or ".join(kinds), False
        else:
            message, key = messages[0]
        problems.append(source.problem(path, message, key=key))
    return problems


# -- references and meaning ------------------------------------------------------------------

_CONNECTION_REFS = {
    "backups": ("connection",),
    "migrations": ("from", "to"),
    "restores": ("to",),
    "teardowns": ("connection",),
}


def _section(data: Any, name: str) -> dict[str, Any]:
    value = data.get(name) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _reference_problems(source: Source, data: Any) -> list[Problem]:
    """Dangling references; checked on the raw data so they show beside structural errors."""
    problems = []
    connections = [str(name) for name in _section(data, "connections")]
    backups = [str(name) for name in _section(data, "backups")]
    addresses = [
        f"{kind[:-1]}.{name}" for kind in _CONNECTION_REFS for name in _section(data, kind)
    ]
    for section, fields in _CONNECTION_REFS.items():
        for name, spec in _section(data, section).items():
            if not isinstance(spec, dict):
                continue
            for field in fields:
                ref = spec.get(field)
                if isinstance(ref, str) and ref not in connections:
                    problems.append(
                        source.problem(
                            (section, name, field),
                            f"unknown connection '{ref}'{did_you_mean(ref, connections)}",
                        )
                    )
            backup = spec.get("backup") if section == "restores" else None
            if isinstance(backup, str) and backup not in backups:
                problems.append(
                    source.problem(
                        (section, name, "backup"),
                        f"unknown backup '{backup}'{did_you_mean(backup, backups)}",
                    )
                )
            depends_on = spec.get("depends_on")
            for i, ref in enumerate(depends_on if isinstance(depends_on, list) else []):
                if isinstance(ref, str) and "." in ref and ref not in addresses:
                    problems.append(
                        source.problem(
                            (section, name, "depends_on", i),
                            f"unknown resource '{ref}'{did_you_mean(ref, addresses)}",
                        )
                    )
    return problems


def _semantic_problems(manifest: Manifest, source: Source) -> list[Problem]:
    problems = []
    seen_links: dict[tuple[str, ...], str] = {}
    for name, connection in manifest.connections.items():
        key = connection.link_key()
        if key in seen_links:
            problems.append(
                source.problem(
                    ("connections", name),
                    f"same database as connection '{seen_links[key]}'",
                )
            )
        seen_links.setdefault(key, name)
    for name, migration in manifest.migrations.items():
        source_link = manifest.connections[migration.source].link_key()
        if source_link == manifest.connections[migration.target].link_key():
            problems.append(
                source.problem(
                    ("migrations", name, "to"),
                    f"'{migration.target}' is the same database as the source '{migration.source}'",
                )
            )
    addresses = set(manifest.resources())
    for i, move in enumerate(manifest.moved):
        if move.from_ in addresses:
            problems.append(
                source.problem(("moved", i, "from"), f"'{move.from_}' is still declared")
            )
        if move.to not in addresses:
            problems.append(source.problem(("moved", i, "to"), f"'{move.to}' is not declared"))
    problems += _teardown_clashes(manifest, source)
    problems += _migration_clashes(manifest, source)
    graph = dependencies(manifest)
    cycle = find_cycle(graph)
    if cycle:
        kind, name = cycle[0].split(".", 1)
        problems.append(
            source.problem(
                (f"{kind}s", name, "depends_on"),
                "dependency cycle: " + " -> ".join(cycle),
            )
        )
    else:
        problems += _unordered_reads(manifest, graph, source)
    return problems


def _unordered_reads(
    manifest: Manifest, graph: dict[str, set[str]], source: Source
) -> list[Problem]:
    """A resource reading a connection that another one writes, neither applied before the
    other: what it reads would depend on which the apply happens to run first."""
    reads, writes = reads_and_writes(manifest)
    before = ancestors(graph)
    problems = []
    for reader, connections in sorted(reads.items()):
        kind, name = reader.split(".", 1)
        field = "from" if kind == "migration" else "connection"
        for writer, written in sorted(writes.items()):
            shared = sorted(connections & written)
            if writer == reader or not shared or writer in before[reader]:
                continue
            if reader in before[writer]:
                continue
            problems.append(
                source.problem(
                    (f"{kind}s", name, field),
                    f"reads '{shared[0]}', which {writer} writes, and neither depends on the "
                    f"other: add depends_on: [{writer}] here to read what it writes, or add "
                    f"depends_on: [{reader}] to {writer} to read '{shared[0]}' before",
                )
            )
    return problems


def _teardown_clashes(manifest: Manifest, source: Source) -> list[Problem]:
    """A teardown of tables that a restore or a migration of the same manifest writes: each
    apply would undo the other's work, so the manifest could never hold."""
    writers = [
        (f"restore.{name}", restore.to, restore.tables)
        for name, restore in manifest.restores.items()
    ]
    for name, migration in manifest.migrations.items():
        options = migration.table_options()
        written = None if options is None else [o.rename_to or t for t, o in options.items()]
        writers.append((f"migration.{name}", migration.target, written))
    problems = []
    for name, teardown in manifest.teardowns.items():
        whole = teardown.drop_database or teardown.tables == "all"
        for address, connection, written in writers:
            if connection != teardown.connection:
                continue
            # A writer of every table of its source or backup (None) may or may not meet the
            # listed tables: only the plan knows those tables, so only a clear clash counts.
            both = [] if whole or written is None else sorted(set(teardown.tables) & set(written))
            if whole or both:
                what = f"table{'s' * (len(both) > 1)} {', '.join(both)}" if both else "tables"
                problems.append(
                    source.problem(
                        ("teardowns", name, "connection"),
                        f"drops {what} of '{connection}' that {address} writes: each apply "
                        "would undo the other",
                    )
                )
    return problems


def _migration_clashes(manifest: Manifest, source: Source) -> list[Problem]:
    """Two migrations that write the same target table where one of them replaces or
    mirrors it: each apply would delete what the other wrote. (Appending or upserting into
    one table from several sources is fine.)"""
    writers: dict[tuple[str, str], tuple[str, str]] = {}
    problems = []
    for name, migration in manifest.migrations.items():
        for table, options in (migration.table_options() or {}).items():
            key = (migration.target, options.rename_to or table)
            mode = options.mode or migration.mode
            first, first_mode = writers.setdefault(key, (name, mode))
            if first != name and {mode, first_mode} & {"replace", "mirror"}:
                problems.append(
                    source.problem(
                        ("migrations", name, "tables", table),
                        f"table {key[1]} of '{key[0]}' is also written by migration.{first} "
                        f"({first_mode}; here {mode}): each apply would delete what the other "
                        "wrote",
                    )
                )
    return problems
