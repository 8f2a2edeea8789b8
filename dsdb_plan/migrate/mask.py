"""Masking: per-column transforms that replace sensitive values as rows are copied.

A transform depends only on the secret seed, its name and the value — not on the table, the
column or the row — so the same customer id masks to the same value in `customers.id` and in
`orders.customer_id`, and a masked key still joins. `follow` relies on that: a masked
column's foreign-key partners are masked the same way (`resolve_masks`).

Every transform keeps the column's type and fits its length. `hash` on integers is a keyed
permutation (a Feistel network, cycle-walked within the value's size class: below 2**15,
2**31 and 2**63, so a smallint stays a smallint) and therefore unique where the column is;
on text it is a keyed digest, unique in practice. `fake_*` values come from Faker, seeded
per value by the keyed digest: realistic, and the same on every run with the same seed; on
a unique column they carry a short digest so they stay unique. `keep_format` replaces each
digit by a digit and each letter by a letter of the same case. `shift_days` moves a date by
a number of days (1 to 365, either way) derived from the value. `null` empties the column.

Values are masked as the source driver gives them (a SQLite date is ISO text, a PostgreSQL
one a `date`), and come out in the same form, so the copy's conversion for the target works
on them as on any source value.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import hmac
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from dsdb_plan.dbschema import ColumnSchema, ForeignKeySchema, TableSchema
from dsdb_plan.errors import PlanError

if TYPE_CHECKING:
    from faker import Faker

Transform = Callable[[Any], Any]
R = TypeVar("R")

_INTEGERS = frozenset({"smallint", "integer", "bigint"})
_TEXTS = frozenset({"varchar", "text"})
_FAKES: dict[str, str] = {
    "fake_email": "email",
    "fake_name": "name",
    "fake_first_name": "first_name",
    "fake_last_name": "last_name",
    "fake_phone": "phone_number",
    "fake_address": "address",
    "fake_company": "company",
    "fake_text": "sentence",
}
#: The column types each transform keeps (`null` takes any nullable column).
ACCEPTS: dict[str, frozenset[str] | None] = {
    "null": None,
    "hash": _INTEGERS | _TEXTS | {"uuid", "binary"},
    "keep_format": _INTEGERS | _TEXTS,
    "shift_days": frozenset({"date", "datetime"}),
    **{name: _TEXTS for name in _FAKES},
}
#: The size classes integers are permuted within: a value stays in its own.
_INTEGER_CLASSES = ((0, 2**15), (2**15, 2**31), (2**31, 2**63))
_ROUNDS = 4
#: Characters of digest a masked text carries at least: unique in practice.
_HASH_CHARS = 16


class Masker:
    """The transforms under one secret seed."""

    def __init__(self, seed: str) -> None:
        self._key = hashlib.sha256(b"dsdb-mask\0" + seed.encode()).digest()
        self._faker: Faker | None = None  # made on first use: importing Faker takes 0.3 s
        self._faker_lock = threading.Lock()  # tables are copied in parallel threads

    def transform(self, name: str, column: ColumnSchema, *, unique: bool) -> Transform:
        """The function masking one value of `column` with transform `name` (None stays
        None)."""
        if name == "null":
            return _to_null
        step = self._step(name, column, unique)

        def masked(value: Any) -> Any:
            return None if value is None else step(value)

        return masked

    def _step(self, name: str, column: ColumnSchema, unique: bool) -> Transform:
        length = column.length
        if name == "hash":
            return lambda value: self._hash(value, length)
        if name == "keep_format":
            return self._keep_format
        if name == "shift_days":
            return self._shift_days
        method = _FAKES[name]
        return lambda value: self._fake(method, value, length, unique)

    def _digest(self, *parts: str) -> bytes:
        return hmac.new(self._key, "\0".join(parts).encode(), hashlib.sha256).digest()

    def _hash(self, value: Any, length: int | None) -> Any:
        if isinstance(value, int):
            return self._permute(value)
        if isinstance(value, uuid.UUID):
            return uuid.UUID(bytes=self._digest("uuid", str(value))[:16], version=4)
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            return self._stream("binary", data.hex(), len(data))
        text = str(value)
        if _looks_like_uuid(text):
            return str(uuid.UUID(bytes=self._digest("uuid", text.lower())[:16], version=4))
        size = max(len(text), _HASH_CHARS)
        return _fit(self._stream("hash", text, size).hex()[:size], length)

    def _stream(self, purpose: str, text: str, size: int) -> bytes:
        """`size` bytes derived from `text`."""
        blocks = b""
        counter = 0
        while len(blocks) < size:
            blocks += self._digest(purpose, str(counter), text)
            counter += 1
        return blocks[:size]

    def _permute(self, value: int) -> int:
        """A keyed bijection of the integers that keeps each value in its size class."""
        if value < 0:
            return -self._permute(-value - 1) - 1
        for low, high in _INTEGER_CLASSES:
            if value < high:
                bits = max(2, (high - 1).bit_length())
                bits += bits % 2
                masked = value
                while True:  # cycle-walking: a permutation of [low, high)
                    masked = self._feistel(masked, bits)
                    if low <= masked < high:
                        return masked
        return value  # beyond 2**63: no column type holds it

    def _feistel(self, value: int, bits: int) -> int:
        half = bits // 2
        mask = (1 << half) - 1
        left, right = value >> half, value & mask
        for round_ in range(_ROUNDS):
            digest = self._digest("feistel", str(bits), str(round_), str(right))
            left, right = right, left ^ (int.from_bytes(digest[:8], "big") & mask)
        return (left << half) | right

    def _keep_format(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            digits = str(abs(value))
            stream = self._stream("format", str(value), len(digits))
            masked = "".join(str(byte % 10) for byte in stream)
            masked = str(1 + stream[0] % 9) + masked[1:] if len(digits) > 1 else masked
            return -int(masked) if value < 0 else int(masked)
        text = str(value)
        stream = self._stream("format", text, len(text))
        out = []
        for char, byte in zip(text, stream, strict=True):
            if char.isdigit():
                out.append(str(byte % 10))
            elif char.isascii() and char.isupper():
                out.append(chr(ord("A") + byte % 26))
            elif char.isascii() and char.islower():
                out.append(chr(ord("a") + byte % 26))
            else:
                out.append(char)
        return "".join(out)

    def _shift_days(self, value: Any) -> Any:
        text = value if isinstance(value, str) else value.isoformat()
        stream = self._stream("shift", text, 2)
        days = 1 + int.from_bytes(stream, "big") % 365
        shift = dt.timedelta(days=days if stream[0] % 2 else -days)
        if isinstance(value, dt.date):  # date and datetime alike
            return value + shift
        if len(value) == 10:
            return (dt.date.fromisoformat(value) + shift).isoformat()
        moment = dt.datetime.fromisoformat(value) + shift
        return moment.isoformat(sep=value[10]) if len(value) > 10 else moment.isoformat()

    def _fake(self, method: str, value: Any, length: int | None, unique: bool) -> str:
        digest = self._digest("fake", method, str(value))
        with self._faker_lock:
            if self._faker is None:
                from faker import Faker

                self._faker = Faker()
            self._faker.seed_instance(int.from_bytes(digest[:8], "big"))
            fake = str(getattr(self._faker, method)()).replace("\n", ", ")
        if not unique:
            return _fit(fake, length)
        tag = digest[8:14].hex()
        if method == "email":
            local, _, domain = fake.partition("@")
            return _fit(f"{local}.{tag}@{domain}", length)
        return _fit(f"{fake} {tag}", length)


def _to_null(_value: Any) -> None:
    return None


def _fit(text: str, length: int | None) -> str:
    return text if length is None else text[:length]


def _looks_like_uuid(text: str) -> bool:
    if len(text) != 36:
        return False
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# -- which columns a migration masks --------------------------------------------------------


@dataclass(frozen=True)
class MaskRule:
    """`pattern` (`table.column`, `column` for any table, with `*` wildcards) → transform."""

    pattern: str
    transform: str
    #: a table's own rule: naming a column the table lacks is an error
    strict: bool = False

    def matches(self, table: str, column: str) -> bool:
        target = f"{table}.{column}" if "." in self.pattern else column
        return fnmatch.fnmatchcase(target, self.pattern)


def resolve_masks(
    schemas: Mapping[str, TableSchema],
    rules: Mapping[str, Sequence[MaskRule]],
    edges: Iterable[tuple[str, ForeignKeySchema]],
) -> tuple[dict[str, dict[str, str]], set[tuple[str, str]]]:
    """The transform of every masked column of the copied tables (`schemas`), and the
    (table, column)s masked because a foreign key links them to a masked column.

    `rules` maps a table to the rules that apply to it (its own first). A column a foreign
    key links to a masked column is masked the same way, so that the key still joins; two
    different transforms on the two ends of one key are a PlanError, as are a transform
    that cannot keep a column's type and `null` on a column that cannot be NULL.
    """
    masks: dict[str, dict[str, str]] = {}
    for table, schema in schemas.items():
        for rule in rules.get(table, ()):
            named = [c for c in schema.column_names if rule.matches(table, c)]
            for column in named:
                masks.setdefault(table, {}).setdefault(column, rule.transform)
            if not named and rule.strict:
                raise PlanError(f"mask: table {table!r} has no column {rule.pattern!r}")
    linked: set[tuple[str, str]] = set()
    links = [(child, fk) for child, fk in edges if child in schemas and fk.ref_table in schemas]
    changed = True
    while changed:
        changed = False
        for child, fk in links:
            for column, ref_column in zip(fk.columns, fk.ref_columns, strict=True):
                ends = ((child, column), (fk.ref_table, ref_column))
                given = {masks.get(t, {}).get(c) for t, c in ends} - {None}
                if len(given) > 1:
                    raise PlanError(
                        f"mask: {child}.{column} and {fk.ref_table}.{ref_column} are linked by a "
                        f"foreign key but masked differently ({', '.join(sorted(map(str, given)))})"
                        ": give them the same transform, so the masked key still joins"
                    )
                if not given:
                    continue
                (transform,) = given
                for table, name in ends:
                    if name not in masks.get(table, {}):
                        masks.setdefault(table, {})[name] = str(transform)
                        linked.add((table, name))
                        changed = True
    for table, columns in masks.items():
        for name, transform in columns.items():
            _check_fits(schemas[table].column(name), table, transform)
    return masks, linked


def _check_fits(column: ColumnSchema, table: str, transform: str) -> None:
    accepted = ACCEPTS[transform]
    where = f"mask: {table}.{column.name}"
    if transform == "null" and not column.nullable:
        raise PlanError(f"{where}: null cannot mask a column that is NOT NULL")
    if accepted is not None and column.type not in accepted:
        kinds = ", ".join(sorted(accepted))
        raise PlanError(
            f"{where}: {transform} keeps only columns of type {kinds}, not {column.type}"
        )


def unique_columns(schema: TableSchema) -> set[str]:
    """Columns whose values are unique on their own: a one-column key or unique index."""
    found = {schema.primary_key[0]} if len(schema.primary_key) == 1 else set()
    found.update(i.columns[0] for i in schema.indexes if i.unique and len(i.columns) == 1)
    return found


Rows = Sequence[Sequence[Any]]


def with_masks(
    take: Callable[[Rows], R], schema: TableSchema, masker: Masker | None, masks: Mapping[str, str]
) -> Callable[[Rows], R]:
    """`take` (rows of `schema`'s columns), given them with their masked columns masked."""
    if masker is None or not any(column in masks for column in schema.column_names):
        return take
    mask = masked_rows(masker, schema, masks)
    return lambda rows: take(mask(rows))


def masked_rows(
    masker: Masker, schema: TableSchema, masks: Mapping[str, str]
) -> Callable[[Rows], list[tuple[Any, ...]]]:
    """Masks the columns of `masks` in rows of `schema`'s columns, in order."""
    unique = unique_columns(schema)
    steps = [
        (index, masker.transform(masks[column.name], column, unique=column.name in unique))
        for index, column in enumerate(schema.columns)
        if column.name in masks
    ]

    def mask(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        result = []
        for row in rows:
            values = list(row)
            for index, step in steps:
                values[index] = step(values[index])
            result.append(tuple(values))
        return result

    return mask


def unmasked_sensitive(
    sensitive: Sequence[str],
    copied: Mapping[str, Sequence[str]],
    masks: Mapping[str, Mapping[str, str]],
) -> list[str]:
    """The `table.column`s that `sensitive` patterns name, copied (`copied`: table → its
    copied columns) without a mask."""
    rules = [MaskRule(pattern, "") for pattern in sensitive]
    return [
        f"{table}.{column}"
        for table, columns in copied.items()
        for column in columns
        if column not in masks.get(table, {}) and any(r.matches(table, column) for r in rules)
    ]
