"""What a run landed, compared with its source: types, NOT NULL, keys, identity, values.

Pure functions of two observed databases (see observe.py), so the comparison is the same
for every tool and engine. The result is a short phrase for the report's "what lands"
column ("exact, keys, identity") and the findings behind it, each measured on the target.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as the engine names it
    nullable: bool
    identity: bool = False  # the engine numbers new rows itself


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[tuple[tuple[str, ...], str], ...]  # (columns, referred table)
    indexes: tuple[tuple[str, ...], ...]  # columns of each secondary index
    rows: Sequence[tuple[Any, ...]] = ()  # a sample ordered by key, in `columns` order

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Database:
    engine: str  # sqlite, postgresql, mariadb or duckdb
    tables: dict[str, Table]


@dataclass
class Landed:
    """Findings of one target; `summary` is the report's phrase."""

    findings: list[str] = field(default_factory=list)
    good: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return ", ".join(self.findings) if self.findings else ", ".join(self.good)


def family(engine: str, type_name: str) -> str:
    """The kind of value a column type holds, across engines' names for it."""
    name = type_name.lower()
    if engine == "mariadb" and name.startswith(("tinyint(1)", "bool")):
        return "boolean"
    checks = (
        ("boolean", ("bool",)),
        ("timestamp", ("timestamp", "datetime")),
        ("date", ("date",)),
        ("decimal", ("numeric", "decimal")),
        ("float8", ("double", "float8", "float(53)")),
        ("integer", ("int",)),
        ("binary", ("blob", "bytea", "binary")),
        ("text", ("char", "text", "clob", "string")),
    )
    for kind, words in checks:
        if any(word in name for word in words):
            return kind
    if name.startswith("real"):
        return "float8" if engine == "sqlite" else "float4"
    if name.startswith("float"):
        return "float4"
    return name or "none"


def compare(source: Database, target: Database, expect_identity: bool = True) -> Landed:
    """How the target's tables differ from the source's (tables the source has)."""
    landed = Landed()
    types: dict[str, list[str]] = {}
    not_null: list[str] = []
    extra: set[str] = set()
    values: list[str] = []
    missing_tables = [name for name in source.tables if name not in target.tables]
    if missing_tables:
        landed.findings.append("missing tables: " + ", ".join(missing_tables))
    pairs = [(s, target.tables[n]) for n, s in source.tables.items() if n in target.tables]
    for src, tgt in pairs:
        for column in src.columns:
            found = tgt.column(column.name)
            if found is None:
                landed.findings.append(f"missing column {src.name}.{column.name}")
                continue
            kind, landed_as = family(source.engine, column.type), family(target.engine, found.type)
            if landed_as != kind:
                change = f"{_short(column.type)} → {_short(found.type)}"
                if _short(column.type).lower() == _short(found.type).lower():
                    change += f" ({kind} → {landed_as})"
                types.setdefault(change, []).append(column.name)
            if not column.nullable and found.nullable:
                not_null.append(f"{src.name}.{column.name}")
        extra.update(c.name for c in tgt.columns if src.column(c.name) is None)
        values.extend(_differences(source.engine, src, tgt))
    for change, columns in types.items():
        landed.findings.append(f"{change} ({', '.join(columns)})")
    if not_null:
        landed.findings.append("NOT NULL dropped (" + ", ".join(not_null) + ")")
    landed.findings.extend(_key_findings(pairs, expect_identity))
    if extra:
        landed.findings.append("extra columns: " + ", ".join(sorted(extra)))
    landed.findings.extend(values)
    landed.good = ["exact", "keys"] + (["identity"] if expect_identity else [])
    return landed


def source_has_identity(source: Database) -> bool:
    """Whether the source's keys are numbered by the engine (SQLite's INTEGER PRIMARY KEY)."""
    return any(column.identity for table in source.tables.values() for column in table.columns)


def _key_findings(pairs: list[tuple[Table, Table]], expect_identity: bool) -> list[str]:
    findings = []
    no_key = [s.name for s, t in pairs if s.primary_key and t.primary_key != s.primary_key]
    if no_key:
        findings.append("no primary key (" + ", ".join(no_key) + ")")
    no_fk = [s.name for s, t in pairs if any(fk not in t.foreign_keys for fk in s.foreign_keys)]
    if no_fk:
        findings.append("no foreign key (" + ", ".join(no_fk) + ")")
    no_index = [s.name for s, t in pairs if any(not _indexed(index, t) for index in s.indexes)]
    if no_index:
        findings.append("no index (" + ", ".join(no_index) + ")")
    if expect_identity:
        lost = [
            s.name
            for s, t in pairs
            if any(c.identity for c in s.columns) and not any(c.identity for c in t.columns)
        ]
        if lost:
            findings.append("no identity (" + ", ".join(lost) + ")")
    return findings


def _indexed(columns: tuple[str, ...], table: Table) -> bool:
    """An index on `columns` or one they lead (MariaDB's foreign key index counts)."""
    known = [*table.indexes, table.primary_key]
    return any(index[: len(columns)] == columns for index in known)


def _differences(engine: str, src: Table, tgt: Table) -> list[str]:
    """Per column, the sampled rows whose value the target does not hold exactly (both
    samples are the first rows by key, so row i of one is row i of the other)."""
    if len(tgt.rows) < len(src.rows):
        return [f"{src.name}: {len(src.rows) - len(tgt.rows):,} sampled rows missing"]
    positions = {c.name: i for i, c in enumerate(tgt.columns)}
    found = []
    for index, column in enumerate(src.columns):
        if column.name not in positions:
            continue
        kind = family(engine, column.type)
        at = positions[column.name]
        differ = [
            (s[index], t[at])
            for s, t in zip(src.rows, tgt.rows, strict=False)
            if canonical(kind, s[index]) != canonical(kind, t[at])
        ]
        if differ:
            before, after = differ[0]
            share = f"{len(differ):,} of {len(src.rows):,}"
            found.append(
                f"{src.name}.{column.name} differs in {share} rows ({_show(before)} → "
                f"{_show(after)})"
            )
    return found


def canonical(kind: str, value: Any) -> Any:
    """`value` as the source's column `kind` means it, whatever type a driver gave it.

    Exact only: a float must come back as the same double, a timestamp as the same
    instant; text that merely reads like the value (a date stored as text) stays text,
    so a column that changed family shows as a type change and, if its text differs,
    as changed values too.
    """
    if value is None:
        return None
    if isinstance(value, memoryview):
        value = bytes(value)
    if kind in ("boolean", "integer") and isinstance(value, bool | int):
        return int(value)
    if kind in ("float8", "float4", "decimal") and isinstance(value, float | int | Decimal):
        return _decimal(value)
    if kind == "timestamp":
        return _instant(value)
    if kind == "date" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _decimal(value: float | int | Decimal) -> Decimal | str:
    try:
        return Decimal(repr(value) if isinstance(value, float) else value).normalize()
    except InvalidOperation:
        return repr(value)


def _instant(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC)
    return value


def _short(type_name: str) -> str:
    return re.sub(r"\s+", " ", type_name).strip()


def _show(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return "0x" + bytes(value)[:8].hex() + "…"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "…"
