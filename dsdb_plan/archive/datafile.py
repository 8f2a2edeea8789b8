"""Which format a data file is in, and the reader, scanner and writer for it.

Backup format version 3 writes Parquet (`columnar`); versions 1 and 2 wrote gzip'd JSON lines
(`format`), which version 3 still writes for a table without columns (Parquet cannot count
the rows of one). The file's suffix tells the two apart.

`columnar` is loaded when a Parquet file is first read or written: pyarrow takes a while to
load, which a plan that only checks a backup's metadata does not pay.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from dsdb_plan.archive import format as jsonl
from dsdb_plan.archive.format import Block, DataFileScan
from dsdb_plan.dbschema import TableSchema

#: The newest backup format version, the one written by default.
FORMAT_VERSION = 3
PARQUET_SUFFIX = ".parquet"
#: The suffixes of data files: a folder holding one may be a backup.
DATA_SUFFIXES = (PARQUET_SUFFIX, jsonl.DATA_SUFFIX)
DataFormat = Literal["parquet", "jsonl"]
#: The backup format version each data format is written as.
VERSIONS: dict[DataFormat, int] = {"parquet": FORMAT_VERSION, "jsonl": jsonl.FORMAT_VERSION}


class DataWriter(Protocol):
    """Writes a table's rows to one data file."""

    path: Path
    rows: int

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None: ...

    def close(self) -> tuple[int, str]: ...

    def abort(self) -> None: ...


def new_writer(folder: Path, stem: str, table: TableSchema, data_format: DataFormat) -> DataWriter:
    """A writer of `table`'s rows to `folder/<stem><suffix>` in `data_format`."""
    if data_format == "parquet" and table.columns:
        from dsdb_plan.archive import columnar

        return columnar.ParquetWriter(folder / f"{stem}{PARQUET_SUFFIX}", table)
    return jsonl.DataFileWriter(folder / f"{stem}{jsonl.DATA_SUFFIX}")


def read_blocks(path: Path, version: int) -> Iterator[Block]:
    """The rows of the data file at `path` of a backup of format `version`, a block at a
    time; a damaged file raises `BackupError`."""
    if path.name.endswith(PARQUET_SUFFIX):
        from dsdb_plan.archive import columnar

        return columnar.read_blocks(path)
    return jsonl.read_blocks(path, min(version, jsonl.FORMAT_VERSION))


def scan_data_file(path: Path, version: int) -> DataFileScan:
    """The size, SHA-256 and row count of the data file at `path`, and its damage if any."""
    if path.name.endswith(PARQUET_SUFFIX):
        from dsdb_plan.archive import columnar

        return columnar.scan_data_file(path)
    return jsonl.scan_data_file(path, min(version, jsonl.FORMAT_VERSION))
