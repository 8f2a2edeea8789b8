"""The data file format: gzip'd JSON lines, one JSON array per row, values typed exactly.

Plain JSON carries NULL, booleans, integers of any size, strings and finite floats (Python
writes the shortest repr that reads back to the same double, -0.0 included). Everything else
is a one-key object whose key names the type, so a value never changes type on the way:

    {"$float": "nan" | "inf" | "-inf"}   {"$bytes": base64}      {"$decimal": "12.50"}
    {"$date": iso}  {"$time": iso}  {"$datetime": iso, with offset when tz-aware}
    {"$timedelta": [days, seconds, microseconds]}  {"$uuid": str}  {"$json": value}
    {"$str": str(value)} for anything else a driver returns (kept as text)

Values are tagged per value, not per column: a SQLite column may hold any storage class in
any row, and the raw value is what must come back. JSON columns are stored as their JSON text.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import math
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from dsdb_plan.errors import BackupError

FORMAT_VERSION = 1
DATA_SUFFIX = ".jsonl.gz"
#: Compression level 3: compressing was most of a backup's time at level 6, and level 3
#: takes about half of that for files a few percent larger (any level reads the same).
COMPRESS_LEVEL = 3

_PLAIN = (type(None), bool, int, str)
#: Classes `encode_value` returns as they are (subclasses go through it).
_PASS = frozenset(_PLAIN)
#: One encoder for every row: `json.dumps` with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_DECODE = json.JSONDecoder().decode


def encode_value(value: Any) -> Any:
    """A JSON-ready form of one database value that `decode_value` turns back exactly."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
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


def _decode_float(text: str) -> float:
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[text]


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$float": _decode_float,
    "$bytes": lambda text: base64.b64decode(text, validate=True),
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
    if isinstance(value, dict):
        ((tag, payload),) = value.items()
        return _DECODERS[tag](payload)
    return value


def encode_row(row: Sequence[Any]) -> str:
    """One row as one line of JSON (newlines inside strings are escaped by JSON)."""
    values = [v if v.__class__ in _PASS else encode_value(v) for v in row]
    return _ENCODER.encode(values) + "\n"


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
    """Writes rows to a compressed data file; `close()` fsyncs it and returns size and sha256."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._raw = open(path, "xb")  # noqa: SIM115 - closed in close()
        self._hashing = HashingWriter(self._raw)
        # mtime=0 and no file name: the same rows always give the same bytes and checksum.
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._hashing, compresslevel=COMPRESS_LEVEL, mtime=0
        )
        self._text = io.TextIOWrapper(self._gzip, encoding="utf-8", newline="\n")

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:  # one at a time: a batch of wide rows is never one big string
            self._text.write(encode_row(row))
        self.rows += len(rows)

    def close(self) -> tuple[int, str]:
        self._text.close()  # flushes and closes the gzip stream (writes its trailer)
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        return self._hashing.size, self._hashing.sha256.hexdigest()

    def abort(self) -> None:
        try:
            self._text.close()
        finally:
            self._raw.close()


def read_rows(path: Path) -> Iterator[list[Any]]:
    """Decode the rows of a data file, streaming; a damaged file raises `BackupError`."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="\n") as lines:
            for line in lines:
                yield decode_row(line)
    except (OSError, EOFError, ValueError, KeyError, TypeError) as error:
        raise BackupError(f"backup data file {path} is damaged: {error}") from error


def file_digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (directory entries need their own sync)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
