"""The Parquet data file format (backup format version 3): any data tool reads it.

Each column is stored in the Arrow type that holds its values exactly, chosen from the Python
classes the source's driver returned (nulls aside):

    int → int64        float → float64 (NaN, the infinities and -0.0 kept)   bool → bool
    str → string       bytes → binary        Decimal → decimal128/256 at its own scale
    datetime → timestamp[us], with the zone of tz-aware values   date → date32
    time → time64[us]   timedelta → duration[us]   UUID → string
    only NULLs so far → null

A column whose values have several classes (a SQLite column may hold any storage class in
any row), decimals of differing scales, special or beyond 76 digits, datetimes of differing
zones, integers beyond 64 bits or anything else Arrow cannot hold exactly is stored as
"tagged" text: each value as `format.encode_value` writes it in JSON. Every field's metadata
gives the column's portable type (`dsdb.type`) and, for UUID and tagged columns, how its
text reads back (`dsdb.kind`); so a value always comes back as the driver returned it.

The kinds are taken from the first rows; when a later batch holds a value its column's kind
cannot hold, the rows written so far are read back and written again with a kind that can
(rare: a SQLite column whose storage class changes far into the table).

Rows come as Python values (`write_rows`) or, from a SQLite source, as the Arrow columns its
driver read (`write_columns`, `column_reader.py`): each then holds values of one storage
class, an integer, double, text or blob array, or a decimal column's integers and reals apart
(`Numbers`), and is written as the same kind, with the same values, as its Python values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dsdb_plan.archive.format import Block, DataFileScan, decode_value, encode_value
from dsdb_plan.dbschema import TableSchema
from dsdb_plan.errors import BackupError

#: Rows per row group: large enough for Parquet's column compression to pay, small enough to
#: bound a writer's and a reader's memory (200,000 benchmark rows: 100,000-row groups peaked
#: at 154 MB writing and 133 MB reading, 50,000 at 146 and 130 in files 3.5% larger). A row
#: group is also written once it holds `ROW_GROUP_BYTES` of Arrow data, whatever the values.
ROW_GROUP_ROWS = 50_000
ROW_GROUP_BYTES = 32 << 20
#: Rows decoded into Python values at a time: the columns of a block stay in the CPU's caches
#: while the restore converts them (blocks of 10,000 rows converted half as fast again).
READ_ROWS = 1000
#: Rows decoded at a time by a scan, which keeps no value.
_SCAN_ROWS = 10_000
#: zstd at Arrow's default level: as fast to write as snappy here, files a fifth smaller.
COMPRESSION = "zstd"
#: Without dictionary encoding, which Parquet tries on every column first: on the benchmark
#: rows (unique names, timestamps and blobs) writing took half the time, in a file 12% smaller.

#: Column chunks are read 1 MiB at a time rather than a row group at once: bounded memory.
_READ_OPTIONS: dict[str, Any] = {
    "page_checksum_verification": True,
    "pre_buffer": False,
    "buffer_size": 1 << 20,
}
_KIND = b"dsdb.kind"
_TYPE = b"dsdb.type"
_NONE = type(None)
_TAGGED = "tagged"
_UUID = "uuid"


@dataclass(frozen=True, slots=True)
class Numbers:
    """A SQLite column of integers and reals, read as two arrays: each row's value is in
    `integers`, in `reals` or (NULL) in neither."""

    integers: pa.Array
    reals: pa.Array

    def __len__(self) -> int:
        return len(self.integers)


#: One column of a batch for `ParquetWriter.write_columns`.
Column: TypeAlias = "pa.Array | Numbers"


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one column's values are held: an Arrow type, and `label` for the text kinds whose
    values need decoding (`uuid`, `tagged`)."""

    arrow: pa.DataType
    label: str | None = None


_NULL = _Kind(pa.null())
_TAG = _Kind(pa.string(), _TAGGED)
#: The kinds a column of values of one class is held in, where the class alone decides it.
_PLAIN_KINDS: dict[type, _Kind] = {
    int: _Kind(pa.int64()),
    float: _Kind(pa.float64()),
    bool: _Kind(pa.bool_()),
    str: _Kind(pa.string()),
    bytes: _Kind(pa.binary()),
    dt.date: _Kind(pa.date32()),
    dt.timedelta: _Kind(pa.duration("us")),
    uuid.UUID: _Kind(pa.string(), _UUID),
}
_DECIMAL_DIGITS = ((38, pa.decimal128), (76, pa.decimal256))


def _kind_of(values: Sequence[Any], classes: set[type]) -> _Kind:
    """The kind that holds `values` (of `classes`, None left out) exactly."""
    if not classes:
        return _NULL
    if len(classes) > 1:
        return _TAG
    (kind,) = classes
    if kind in _PLAIN_KINDS:
        return _PLAIN_KINDS[kind]
    present = [value for value in values if value is not None]
    if kind is Decimal:
        return _decimal_kind(present)
    if kind is dt.datetime:
        return _datetime_kind(present)
    if kind is dt.time and all(value.tzinfo is None for value in present):
        return _Kind(pa.time64("us"))
    return _TAG


def _decimal_kind(values: list[Decimal]) -> _Kind:
    """A decimal type at the values' one scale; tagged for NaN, infinities, -0, several
    scales (1.5 and 1.50 are different values) or more digits than Arrow holds."""
    shapes = [value.as_tuple() for value in values]
    exponents = {shape.exponent for shape in shapes}
    if len(exponents) != 1:
        return _TAG
    (exponent,) = exponents
    if not isinstance(exponent, int) or exponent > 0:
        return _TAG
    if any(shape.sign and not any(shape.digits) for shape in shapes):
        return _TAG  # -0 and -0.00: Arrow has no negative zero
    digits = max(len(shape.digits) for shape in shapes)
    for limit, make in _DECIMAL_DIGITS:
        if max(digits, -exponent) <= limit:
            return _Kind(make(limit, -exponent))
    return _TAG


def _datetime_kind(values: list[dt.datetime]) -> _Kind:
    """timestamp[us], naive, or zoned as every value is: by the zone's name, or by its one
    offset; tagged for a mix of zones (whose offsets each value must keep)."""
    zones = {value.tzinfo for value in values}
    if zones == {None}:
        return _Kind(pa.timestamp("us"))
    if None in zones or len(zones) > 1:
        return _TAG
    (zone,) = zones
    name = getattr(zone, "key", None)
    if isinstance(name, str):
        return _Kind(pa.timestamp("us", tz=name))
    offsets = {value.utcoffset() for value in values}
    if len(offsets) != 1:
        return _TAG
    (offset,) = offsets
    assert offset is not None
    if offset % dt.timedelta(minutes=1):
        return _TAG  # Arrow names fixed offsets in whole minutes
    minutes = offset // dt.timedelta(minutes=1)
    sign = "-" if minutes < 0 else "+"
    return _Kind(pa.timestamp("us", tz=f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"))


def _widened(current: _Kind, found: _Kind) -> _Kind:
    """The kind for a column held as `current` so far whose new values need `found`."""
    if current == _NULL:
        return found
    if found in (_NULL, current):
        return current
    return _TAG


def _array(values: Sequence[Any], kind: _Kind) -> pa.Array:
    if kind.label == _TAGGED:
        return pa.array(_tagged(values), pa.string())
    if kind.label == _UUID:
        texts = [None if value is None else str(value) for value in values]
        return pa.array(texts, pa.string())
    return pa.array(values, kind.arrow)


_NUMBERS = frozenset((int, float))
_NOT_JSON = frozenset(("nan", "inf", "-inf"))


def _tagged(values: Sequence[Any]) -> list[str | None]:
    """`_tag` of each value. Integers and finite floats (what a SQLite NUMERIC column holds)
    are their repr, which JSON reads back as the same int or float: one C call a value."""
    if _NUMBERS.issuperset(_classes(values)):
        texts = [None if value is None else repr(value) for value in values]
        if _NOT_JSON.isdisjoint(texts):
            return texts
    return [_tag(value) for value in values]


def _tag(value: Any) -> str | None:
    """A value as JSON text that `_untagged` turns back into it exactly (NULL stays NULL)."""
    if value is None:
        return None
    encoded = encode_value(value)
    if encoded.__class__ is int or encoded.__class__ is float:
        return repr(encoded)  # any size of integer; a finite float's shortest exact repr
    try:
        return orjson.dumps(encoded).decode()
    except TypeError:  # an integer beyond 64 bits inside a JSON value
        return json.dumps(encoded, ensure_ascii=False)


def _untagged(texts: list[str | None]) -> list[Any]:
    """The values `_tagged` wrote: the texts parsed as one JSON array (one C call for the
    column), then the tagged objects among them decoded."""
    present = [text for text in texts if text is not None]
    values: list[Any] = json.loads("[" + ",".join(present) + "]")
    if len(values) != len(present):
        raise ValueError("a tagged value is not one JSON value")
    if dict in set(map(type, values)):
        values = [decode_value(v) if v.__class__ is dict else v for v in values]
    if len(present) == len(texts):
        return values
    items = iter(values)
    return [None if text is None else next(items) for text in texts]


def _fits(values: Sequence[Any], kind: _Kind) -> _Kind:
    """The kind `values` need given their column is held as `kind`: `kind` when they fit."""
    classes = set(map(type, values))
    classes.discard(_NONE)
    if kind == _TAG or not classes:
        return kind
    if kind != _NULL and kind.label is None and len(classes) == 1:
        (found,) = classes
        if _PLAIN_KINDS.get(found) == kind:
            return kind  # the common case, decided without looking at the values
    return _widened(kind, _kind_of(values, classes))


class ParquetWriter:
    """Writes rows to a Parquet file; `close()` fsyncs it and returns size and SHA-256.

    Batches are turned into Arrow arrays here while a worker thread compresses and writes the
    row group before (Arrow lets go of the interpreter while it does). The same rows always
    give the same bytes.
    """

    def __init__(self, path: Path, table: TableSchema) -> None:
        self.path = path
        self.rows = 0
        self._table = table
        self._kinds: list[_Kind] | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-parquet")
        self._writing: Future[None] | None = None
        open(path, "xb").close()  # claims the name, as the JSON-lines writer does

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        if self._kinds is None:
            self._kinds = [_kind_of(values, _classes(values)) for values in columns]
        needed = [_fits(values, kind) for values, kind in zip(columns, self._kinds, strict=True)]
        if needed != self._kinds:
            self._rewrite(needed)
        self._add(self._batch(columns))  # first: it may rewrite, emptying `_pending`

    def write_columns(self, columns: Sequence[Column]) -> None:
        """Write a batch of rows given as whole columns (see the module's docstring)."""
        found = [_column_kind(column) for column in columns]
        if self._kinds is None:
            self._kinds = found
        needed = [_widened(kind, new) for kind, new in zip(self._kinds, found, strict=True)]
        if needed != self._kinds:
            self._rewrite(needed)
        arrays = [
            _column_array(column, kind) for column, kind in zip(columns, self._kinds, strict=True)
        ]
        self._add(pa.RecordBatch.from_arrays(arrays, schema=self._schema()))

    def _add(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        self.rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def close(self) -> tuple[int, str]:
        if self._kinds is None:
            self._kinds = [_NULL] * len(self._table.columns)
        self._flush()
        self._wait()
        self._worker.shutdown()
        self._open().close()
        with open(self.path, "rb+") as handle:
            os.fsync(handle.fileno())
        return _size_and_sha256(self.path)

    def abort(self) -> None:
        self._worker.shutdown(cancel_futures=True)
        if self._writer is not None:
            self._writer.close()

    def _batch(self, columns: Sequence[Sequence[Any]]) -> pa.RecordBatch:
        """The columns as Arrow arrays of their kinds; a column whose values its kind cannot
        hold after all (an integer beyond 64 bits, text that is not UTF-8) is tagged."""
        assert self._kinds is not None
        arrays = []
        for index, values in enumerate(columns):
            try:
                arrays.append(_array(values, self._kinds[index]))
            except (OverflowError, UnicodeError, pa.ArrowInvalid, pa.ArrowTypeError):
                if self._kinds[index] == _TAG:
                    raise
                self._rewrite([*self._kinds[:index], _TAG, *self._kinds[index + 1 :]])
                arrays.append(_array(values, _TAG))
        return pa.RecordBatch.from_arrays(arrays, schema=self._schema())

    def _schema(self) -> pa.Schema:
        assert self._kinds is not None
        fields = []
        for column, kind in zip(self._table.columns, self._kinds, strict=True):
            metadata = {_TYPE: column.type.encode()}
            if kind.label is not None:
                metadata[_KIND] = kind.label.encode()
            fields.append(pa.field(column.name, kind.arrow, metadata=metadata))
        return pa.schema(fields)

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self.path,
                self._schema(),
                compression=COMPRESSION,
                use_dictionary=False,
                write_page_checksum=True,
            )
        return self._writer

    def _flush(self) -> None:
        """Hand the pending batches to the worker as one row group."""
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending)
        self._pending = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._wait()
        writer = self._open()
        self._writing = self._worker.submit(writer.write_table, table, row_group_size=len(table))

    def _wait(self) -> None:
        """Let the row group being written finish, raising what went wrong with it."""
        if self._writing is not None:
            self._writing.result()
            self._writing = None

    def _rewrite(self, kinds: list[_Kind]) -> None:
        """Hold the columns as `kinds` from now on: the rows written so far are read back and
        written again, a row group at a time."""
        pending = [Block(batch.num_rows, _columns(batch)) for batch in self._pending]
        self._pending = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._wait()
        written = self.path.with_name(self.path.name + ".old")
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            os.replace(self.path, written)
        self._kinds = kinds
        previous = read_blocks(written) if written.exists() else iter(())
        for block in itertools.chain(previous, pending):
            arrays = [
                _array(values, kind) for values, kind in zip(block.columns, kinds, strict=True)
            ]
            self._open().write_table(pa.Table.from_arrays(arrays, schema=self._schema()))
        written.unlink(missing_ok=True)


_ARRAY_KINDS = {
    pa.int64(): _PLAIN_KINDS[int],
    pa.float64(): _PLAIN_KINDS[float],
    pa.string(): _PLAIN_KINDS[str],
    pa.binary(): _PLAIN_KINDS[bytes],
}


def _column_kind(column: Column) -> _Kind:
    """The kind a column of a batch needs: its values' class, or tagged for a decimal
    column holding integers and reals."""
    if isinstance(column, Numbers):
        integers = column.integers.null_count < len(column)
        reals = column.reals.null_count < len(column)
        if integers and reals:
            return _TAG
        return _column_kind(column.integers if integers else column.reals)
    if column.null_count == len(column):
        return _NULL
    return _ARRAY_KINDS[column.type]


def _column_array(column: Column, kind: _Kind) -> pa.Array:
    """The column as an array of `kind` (its own kind, or one it was widened to)."""
    if isinstance(column, Numbers):
        if kind == _TAG:
            return pc.coalesce(_number_texts(column.integers), _number_texts(column.reals))
        integers = column.integers.null_count < len(column)
        return _column_array(column.integers if integers else column.reals, kind)
    if column.null_count == len(column):
        return pa.nulls(len(column), kind.arrow)
    if kind == _TAG:
        if column.type in (pa.int64(), pa.float64()):
            return _number_texts(column)
        return pa.array(_tagged(column.to_pylist()), pa.string())
    return column


def _number_texts(numbers: pa.Array) -> pa.Array:
    """Integers or doubles as `_tagged` writes them (their repr, `_tag` for a double no
    JSON number holds), in whole columns. Where Arrow writes a double in fixed notation it
    writes repr's shortest digits, but a whole number without repr's ".0"; the others (an
    exponent, which Arrow writes from fewer digits than repr, and repr below 1e-4 or from
    1e16; what is not finite) are written by Python. In pyarrow alone: polars would cost a
    backup about 25 MB (issue 15, aim 7)."""
    texts = pc.cast(numbers, pa.string())
    if numbers.type == pa.int64():
        return texts  # an integer's digits are its repr
    whole = pc.invert(pc.match_substring(texts, "."))
    texts = pc.if_else(whole, pc.binary_join_element_wise(texts, ".0", ""), texts)
    magnitude = pc.abs(numbers)
    by_python = pc.fill_null(
        pc.or_(
            pc.invert(pc.is_finite(numbers)),
            pc.or_(
                pc.or_(pc.greater_equal(magnitude, 1e16), pc.match_substring(texts, "e")),
                pc.and_(pc.less(magnitude, 1e-4), pc.greater(magnitude, 0.0)),
            ),
        ),
        False,
    )
    if not pc.any(by_python).as_py():
        return texts
    exceptions = pc.filter(numbers, by_python).to_pylist()
    return pc.replace_with_mask(texts, by_python, pa.array(map(_tag, exceptions), pa.string()))


def _classes(values: Sequence[Any]) -> set[type]:
    classes = set(map(type, values))
    classes.discard(_NONE)
    return classes


def _size_and_sha256(path: Path) -> tuple[int, str]:
    sha256 = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            sha256.update(chunk)
            size += len(chunk)
    return size, sha256.hexdigest()


_DECODERS: dict[str, Callable[[list[Any]], list[Any]]] = {
    _TAGGED: _untagged,
    _UUID: lambda texts: [None if text is None else uuid.UUID(text) for text in texts],
}


def _columns(batch: pa.RecordBatch) -> list[Sequence[Any]]:
    """A batch's columns as the Python values the source's driver returned."""
    columns: list[Sequence[Any]] = []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        values = array.to_pylist()
        label = (field.metadata or {}).get(_KIND)
        columns.append(values if label is None else _DECODERS[label.decode()](values))
    return columns


def read_blocks(path: Path) -> Iterator[Block]:
    """The rows of a Parquet data file a row group at a time, column by column, as
    `format.read_blocks` gives them; a damaged file raises `BackupError`."""
    for rows, columns in _decoded(path, READ_ROWS):
        yield Block(rows, columns)


def read_columns(path: Path, names: Sequence[str]) -> Iterator[list[Sequence[Any]]]:
    """The columns `names` of a Parquet data file, as `read_blocks` gives them, a batch of
    rows at a time; the other columns are not read."""
    for _rows, columns in _decoded(path, _SCAN_ROWS, list(names)):
        yield columns


def _decoded(
    path: Path, rows: int, columns: list[str] | None = None
) -> Iterator[tuple[int, list[Sequence[Any]]]]:
    """Each batch of `rows` rows (of `columns`, else all): its row count and decoded columns;
    a file that cannot be read or decoded raises `BackupError`."""
    batches = read_batches(path, rows, columns)
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            decoded = _columns(batch)
        except (ValueError, KeyError, TypeError, pa.ArrowException) as error:
            raise BackupError(f"backup data file {path} is damaged: {error}") from error
        yield batch.num_rows, decoded


def read_batches(
    path: Path, rows: int, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The Arrow batches of a Parquet data file, `rows` rows at a time (of `columns`, else
    all), as stored: tagged and UUID columns are text (`text_kind`); a file that cannot be
    read raises `BackupError`."""
    try:
        with pq.ParquetFile(path, **_READ_OPTIONS) as parquet:
            yield from parquet.iter_batches(rows, columns=columns, use_threads=False)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise BackupError(f"backup data file {path} is damaged: {error}") from error


def text_kind(field: pa.Field) -> str | None:
    """How a text column's values read back: "tagged" (JSON of any value), "uuid", or None
    for a column whose Arrow values are its values."""
    label = (field.metadata or {}).get(_KIND)
    return None if label is None else label.decode()


def scan_data_file(path: Path) -> DataFileScan:
    """Hash a Parquet data file, and read every page of it, checking each page's CRC, to
    count its rows; values are not turned into Python's (that is the restore's work).

    The rows counted are those the row groups decode to, so a footer that disagrees with its
    pages shows. A file that cannot be read raises `OSError`.
    """
    size, sha256 = _size_and_sha256(path)
    rows = 0
    damage = None
    try:
        with pq.ParquetFile(path, **_READ_OPTIONS) as parquet:
            for batch in parquet.iter_batches(_SCAN_ROWS, use_threads=False):
                rows += batch.num_rows
    except (OSError, ValueError, pa.ArrowException) as error:  # the file was read: damage
        damage = str(error) or type(error).__name__
    return DataFileScan(size, sha256, rows, damage)
