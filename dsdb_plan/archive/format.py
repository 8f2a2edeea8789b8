"""The data file format: gzip'd JSON lines, values typed exactly.

Plain JSON carries NULL, booleans, integers of any size, strings and finite floats (Python
writes the shortest repr that reads back to the same double, -0.0 included). Everything else
is a one-key object whose key names the type, so a value never changes type on the way:

    {"$float": "nan" | "inf" | "-inf"}   {"$bytes": base64}      {"$decimal": "12.50"}
    {"$date": iso}  {"$time": iso}  {"$datetime": iso, with offset when tz-aware}
    {"$timedelta": [days, seconds, microseconds]}  {"$uuid": str}  {"$json": value}
    {"$str": str(value)} for anything else a driver returns (kept as text)

Version 2 writes a block of up to `BLOCK_ROWS` rows per line, column by column:
`{"rows": n, "columns": [column, ...]}`. A column whose values (nulls aside) are all of one
class with a tag is that tag over the list of payloads, `{"$bytes": [base64 | null, ...]}`;
any other column is the list of its values, tagged one by one (a SQLite column may hold any
storage class in any row, and the raw value is what must come back). Read column by column,
a block needs no Python call per value. Version 1 wrote one JSON array per row; it is still
read. JSON columns are stored as their JSON text.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import gzip
import hashlib
import io
import json
import math
import os
import uuid
from _json import encode_basestring, make_encoder
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, cast

import orjson
from isal import igzip_threaded, isal_zlib

from dsdb_plan.errors import BackupError

FORMAT_VERSION = 2
#: Rows per line (version 2): a block's columns stay in the CPU's caches while decoded.
BLOCK_ROWS = 1000
DATA_SUFFIX = ".jsonl.gz"
#: Compression level 3: compressing was most of a backup's time at level 6, and level 3
#: takes about half of that for files a few percent larger (any level reads the same).
COMPRESS_LEVEL = 3

#: Decompressed bytes decoded at a time when reading version 1: small enough to stay in the
#: CPU's caches (1 MB blocks decoded a third slower).
_READ_BYTES = 1 << 17

_PLAIN = (type(None), bool, int, str)
_DECODE = json.JSONDecoder().decode
_NONE = type(None)
_LISTS = frozenset((list,))
_DICT_OR_NONE = frozenset((dict, _NONE))
_ONE = frozenset((1,))
_INT64_BOUND = float(2**63)


def encode_value(value: Any) -> Any:
    """A JSON-ready form of one database value that `decode_value` turns back exactly."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, bytes | bytearray | memoryview):
        return _tag_bytes(bytes(value))
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, dict | list):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return {"$str": str(value)}
        return {"$json": value}
    return {"$str": str(value)}


def _tag_bytes(value: bytes) -> dict[str, str]:
    return {"$bytes": binascii.b2a_base64(value, newline=False).decode("ascii")}


def _tag_unknown(value: Any) -> Any:
    """`encode_value` for the C encoder, which calls it for values JSON has no type for;
    binary first, the one SQLite has (five isinstance tests cost as much as the encoding)."""
    return _tag_bytes(value) if value.__class__ is bytes else encode_value(value)


def _decode_float(text: str) -> float:
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[text]


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$float": _decode_float,
    "$bytes": functools.partial(binascii.a2b_base64, strict_mode=True),
    "$decimal": Decimal,
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat,
    "$timedelta": lambda parts: dt.timedelta(parts[0], parts[1], parts[2]),
    "$uuid": uuid.UUID,
    "$json": lambda value: value,
    "$str": str,
}


def decode_value(value: Any) -> Any:
    """The database value `encode_value` encoded."""
    return _decode_tagged(value) if isinstance(value, dict) else value


def _decode_tagged(value: dict[str, Any]) -> Any:
    ((tag, payload),) = value.items()
    return _DECODERS[tag](payload)


#: JSON's C encoder, made once: `json.JSONEncoder.encode` makes a new one on every call, which
#: cost more than encoding a row. It tags values JSON has no type for, and refuses NaN and the
#: infinities (ValueError), which must be tagged instead.
_ENCODE = make_encoder(None, _tag_unknown, encode_basestring, None, ":", ",", False, False, False)
#: Classes whose values the C encoder writes exactly as `encode_value` has them: JSON's scalars
#: and those it hands to `encode_value`. Containers are left out (JSON would write them as
#: arrays and objects, not tagged), and subclasses, which are rare, take the slow path.
_ENCODED_ALIKE = frozenset(
    (*_PLAIN, float, bytes, Decimal, dt.datetime, dt.date, dt.time, dt.timedelta, uuid.UUID)
)
_B2A = functools.partial(binascii.b2a_base64, newline=False)


def _base64_texts(values: list[bytes]) -> list[str]:
    return list(map(bytes.decode, map(_B2A, values)))


#: Classes a column of whose values is written as one tag over its payloads, with the tag
#: and what turns a list of values into the list of their payloads.
_COLUMN_TAGS: dict[type, tuple[str, Callable[[list[Any]], list[Any]]]] = {
    bytes: ("$bytes", _base64_texts),
    Decimal: ("$decimal", lambda values: list(map(str, values))),
    dt.datetime: ("$datetime", lambda values: list(map(dt.datetime.isoformat, values))),
    dt.date: ("$date", lambda values: list(map(dt.date.isoformat, values))),
    dt.time: ("$time", lambda values: list(map(dt.time.isoformat, values))),
    uuid.UUID: ("$uuid", lambda values: list(map(str, values))),
}


def encode_block(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows as one line of JSON in UTF-8, column by column (see the module's docstring)."""
    columns = list(zip(*rows, strict=True))
    encoded = [_encode_column(values) for values in columns]
    block = {"rows": len(rows), "columns": encoded}
    try:
        return ("".join(_ENCODE(block, 0)) + "\n").encode()
    except ValueError:  # a NaN or an infinity: the columns of plain values go value by value
        pass
    block["columns"] = [
        [encode_value(value) for value in values] if column.__class__ is list else column
        for values, column in zip(columns, encoded, strict=True)
    ]
    return ("".join(_ENCODE(block, 0)) + "\n").encode()


def _encode_column(values: Sequence[Any]) -> Any:
    """A column's JSON-ready form: one tag over its payloads, or the list of its values."""
    classes = set(map(type, values))
    nulls = _NONE in classes
    classes.discard(_NONE)
    if len(classes) == 1 and (kind := next(iter(classes))) in _COLUMN_TAGS:
        tag, payloads = _COLUMN_TAGS[kind]
        return {tag: _map_present(payloads, values, nulls)}
    if _ENCODED_ALIKE.issuperset(classes):
        return list(values)  # the C encoder tags what JSON has no type for
    return [encode_value(value) for value in values]


def _map_present(
    function: Callable[[list[Any]], list[Any]], values: Sequence[Any], nulls: bool
) -> list[Any]:
    """`function` of the values that are not None, in their places among the Nones."""
    if not nulls:
        return function(values if values.__class__ is list else list(values))
    return _among_nones(values, function([value for value in values if value is not None]))


def _among_nones(values: Sequence[Any], done: list[Any]) -> list[Any]:
    """`done`, one item per value of `values` that is not None, in those values' places."""
    items = iter(done)
    return [None if value is None else next(items) for value in values]


def decode_row(line: str) -> list[Any]:
    values: list[Any] = _DECODE(line)
    # A `{"` outside a string opens an object, and inside one JSON escapes the quote: a line
    # without it holds no tagged value, and its plain values are the row as it is.
    if '{"' not in line:
        return values
    return [decode_value(value) for value in values]


class HashingWriter(io.RawIOBase):
    """A binary file that hashes and counts every byte written to it."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._target.write(view)
        self.sha256.update(view)
        self.size += len(view)
        return len(view)


class DataFileWriter:
    """Writes rows to a compressed data file; `close()` fsyncs it and returns size and sha256.

    Each batch is encoded here while a worker thread compresses, hashes and writes the one
    before: zlib, hashlib and file writes let go of the GIL, so the two overlap. One batch
    waits at most, which bounds the memory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._raw = open(path, "xb")  # noqa: SIM115 - closed in close()
        self._hashing = HashingWriter(self._raw)
        # mtime=0 and no file name: the same rows always give the same bytes and checksum.
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._hashing, compresslevel=COMPRESS_LEVEL, mtime=0
        )
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-compress")
        self._writing: Future[int] | None = None

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        data = b"".join(
            encode_block(rows[start : start + BLOCK_ROWS])
            for start in range(0, len(rows), BLOCK_ROWS)
        )
        self._wait()
        self._writing = self._worker.submit(self._gzip.write, data)
        self.rows += len(rows)

    def close(self) -> tuple[int, str]:
        self._wait()
        self._worker.shutdown()
        self._gzip.close()  # writes the gzip trailer
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        return self._hashing.size, self._hashing.sha256.hexdigest()

    def abort(self) -> None:
        try:
            self._worker.shutdown(cancel_futures=True)
            self._gzip.close()
        finally:
            self._raw.close()

    def _wait(self) -> None:
        """Let the batch being written finish, raising what went wrong with it."""
        if self._writing is not None:
            self._writing.result()
            self._writing = None


@dataclass(frozen=True, slots=True)
class Block:
    """Rows of a data file, column by column: `columns[i]` holds the i-th value of each of
    the `rows` rows (a table without columns has rows but no columns)."""

    rows: int
    columns: list[Sequence[Any]]

    def row_lists(self) -> list[list[Any]]:
        if not self.columns:
            return [[] for _ in range(self.rows)]
        return list(map(list, zip(*self.columns, strict=True)))


def read_blocks(path: Path, version: int = FORMAT_VERSION) -> Iterator[Block]:
    """Decode the rows of a data file of format `version` a block at a time, streaming; a
    damaged file raises `BackupError`."""
    try:
        with _inflating(path) as data:
            if version == 1:
                yield from _read_version_1(data)
            else:
                for line in data:
                    yield _decode_block(line)
    except (OSError, EOFError, ValueError, KeyError, TypeError, _INFLATE_ERROR) as error:
        raise BackupError(f"backup data file {path} is damaged: {error}") from error


def _inflating(path: Path | io.RawIOBase) -> IO[bytes]:
    """The data file's bytes, inflated by ISA-L: twice as fast as zlib, in a thread of its own
    that does not hold the interpreter, so decoding and loading keep the rest of it."""
    data: IO[bytes] = igzip_threaded.open(path, "rb", threads=1)  # type: ignore[no-untyped-call]
    return data


#: What ISA-L raises for a corrupt deflate stream (its stubs declare it as an instance).
_INFLATE_ERROR = cast(type[Exception], isal_zlib.IsalError)


def _read_version_1(data: IO[bytes]) -> Iterator[Block]:
    rest = b""
    while block := data.read(_READ_BYTES):
        lines, _, rest = (rest + block).rpartition(b"\n")
        if lines:
            yield _decode_lines(lines)
    if rest:
        yield _decode_lines(rest)


def _decode_block(line: bytes) -> Block:
    """One line of version 2: its columns, each decoded as a whole."""
    parsed = _parse(line)
    if parsed is None or any(
        column.__class__ is list and _beyond_int64(column, set(map(type, column)))
        for column in parsed["columns"]
    ):
        parsed = _DECODE(line.decode())
    rows = parsed["rows"]
    if rows.__class__ is not int:
        raise ValueError(f"a block of {rows!r} rows")
    columns = list(map(_decode_block_column, parsed["columns"]))
    for values in columns:
        if len(values) != rows:
            raise ValueError(f"a column of {len(values)} values in a block of {rows} rows")
    return Block(rows, columns)


def _parse(text: bytes) -> Any:
    """`text` parsed by orjson, or None where json must parse it: a JSON value (which may hold
    integers of any size) or what orjson refuses and json reads (1e400 as infinity)."""
    if b'"$json"' in text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _decode_block_column(column: Any) -> Sequence[Any]:
    if column.__class__ is dict:
        ((tag, payloads),) = column.items()
        if payloads.__class__ is not list:
            raise ValueError(f"column of tag {tag} holds no list")
        decode = _DECODERS[tag]
        return _map_present(lambda present: list(map(decode, present)), payloads, None in payloads)
    if column.__class__ is not list:
        raise ValueError("a column is neither a list nor a tag")
    classes = set(map(type, column))
    return _decode_column(column, classes) if dict in classes else column


def _decode_lines(lines: bytes) -> Block:
    """The rows of complete lines, decoded as one JSON array (JSON escapes newlines in
    strings, so each newline ends a row), then their tagged values a column at a time."""
    if b'"$json"' in lines:
        # A JSON value may hold objects that look like tags: only the top level is decoded.
        return _block([decode_row(line) for line in lines.decode().split("\n")])
    text = b"[" + lines.replace(b"\n", b",") + b"]"
    parsed = _parse(text)
    block = None if parsed is None else _block(parsed)
    classes = [] if block is None else [set(map(type, values)) for values in block.columns]
    if block is None or any(map(_beyond_int64, block.columns, classes)):
        block = _block(_DECODE(text.decode()))
        classes = [set(map(type, values)) for values in block.columns]
    for index, (values, found) in enumerate(zip(block.columns, classes, strict=True)):
        if dict in found:
            block.columns[index] = _decode_column(values, found)
    return block


def _block(rows: list[Any]) -> Block:
    if not _LISTS.issuperset(map(type, rows)):
        raise ValueError("a line is not a JSON array")
    return Block(len(rows), list(zip(*rows, strict=True)))


def _beyond_int64(values: Sequence[Any], classes: set[type]) -> bool:
    """Whether a column holds a float where orjson may have read an integer outside 64 bits
    (it reads those as floats, json as exact integers; 2**63 and more is rare as a float)."""
    if float not in classes:
        return False
    floats = values if len(classes) == 1 else [v for v in values if v.__class__ is float]
    return max(floats) >= _INT64_BOUND or min(floats) <= -_INT64_BOUND


def _decode_column(values: Sequence[Any], classes: set[type]) -> Sequence[Any]:
    """A column's values with every tagged value decoded (as `decode_value`). A column whose
    values share one tag (nulls aside) maps the tag's decoder over it: the common case."""
    present = [v for v in values if v is not None] if _NONE in classes else values
    if (
        classes <= _DICT_OR_NONE
        and _ONE.issuperset(map(len, present))
        and (tag := next(iter(present[0]))) in _DECODERS
    ):
        try:
            payloads = list(map(itemgetter(tag), present))
        except KeyError:
            pass  # another tag in the column
        else:
            decoded = list(map(_DECODERS[tag], payloads))
            return decoded if present is values else _among_nones(values, decoded)
    return [_decode_tagged(value) if value.__class__ is dict else value for value in values]


@dataclass(frozen=True, slots=True)
class DataFileScan:
    """What one read of a data file found: its size, SHA-256 and rows, and what was wrong
    with its content (None when every block decoded as one)."""

    size: int
    sha256: str
    rows: int
    damage: str | None


def scan_data_file(path: Path, version: int = FORMAT_VERSION) -> DataFileScan:
    """Hash a data file, inflate it and count its rows, in one read.

    The blocks are parsed and their shape checked (a row count, columns of that many values)
    but their values are not decoded: that is the restore's work. A damaged stream stops the
    count, and the rest of the file is still hashed, so its SHA-256 tells whether the file
    changed or was written so. A file that cannot be read raises `OSError`.
    """
    with open(path, "rb") as raw:
        hashing = _HashingReader(raw)
        rows = 0
        damage = None
        try:
            with _inflating(hashing) as data:
                rows = _count_rows_v1(data) if version == 1 else _count_rows(data)
        except (OSError, EOFError, ValueError, KeyError, TypeError, _INFLATE_ERROR) as error:
            damage = str(error) or type(error).__name__  # a bad CRC is an OSError
        while hashing.read(1 << 20):
            pass  # what the inflater did not need is part of the file all the same
    return DataFileScan(hashing.size, hashing.sha256.hexdigest(), rows, damage)


class _HashingReader(io.RawIOBase):
    """A binary file that hashes and counts every byte read from it."""

    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = self._source.readinto(view)  # type: ignore[attr-defined]
        if count:
            self.sha256.update(view[:count])
            self.size += count
        return int(count or 0)


def _count_rows(data: IO[bytes]) -> int:
    """The rows of version 2 blocks, each block's shape checked."""
    rows = 0
    for line in data:
        block = _parse(line)
        if block is None:
            block = _DECODE(line.decode())
        count = block["rows"]
        if count.__class__ is not int or count < 0:
            raise ValueError(f"a block of {count!r} rows")
        for column in block["columns"]:
            values = next(iter(column.values())) if _one_tag(column) else column
            if values.__class__ is not list or len(values) != count:
                raise ValueError(f"a column that is not a list of {count} values")
        rows += count
    return rows


def _one_tag(column: Any) -> bool:
    return column.__class__ is dict and len(column) == 1


def _count_rows_v1(data: IO[bytes]) -> int:
    """The rows of version 1: one line each, the last one perhaps without its newline."""
    rows = 0
    last = b"\n"
    while block := data.read(_READ_BYTES):
        rows += block.count(b"\n")
        last = block[-1:]
    return rows if last == b"\n" else rows + 1


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (directory entries need their own sync)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
