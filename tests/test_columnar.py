"""Parquet data files (`archive.columnar`): every value the drivers return comes back exactly,
each column in the Arrow type a data tool expects, tagged text only where none holds it."""

from __future__ import annotations

import datetime as dt
import math
import uuid
import zoneinfo
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dsdb_plan.archive import columnar
from dsdb_plan.archive.columnar import ParquetWriter, read_blocks, scan_data_file
from dsdb_plan.dbschema import ColumnSchema, TableSchema

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
#: Per column: its values (one class each, nulls aside) and the Arrow type that holds them.
TYPED: dict[str, tuple[list[Any], pa.DataType]] = {
    "int": ([2**63 - 1, -(2**63), 0], pa.int64()),
    "float": ([0.1 + 0.2, -0.0, 5e-324, math.inf, -math.inf, 1e308], pa.float64()),
    "bool": ([True, False], pa.bool_()),
    "text": (["😀\n\x00", "", "plain"], pa.string()),
    "bytes": ([b"\x00\xff", b""], pa.binary()),
    "decimal": ([Decimal("12345678901234.5678"), Decimal("-0.0001")], pa.decimal128(38, 4)),
    "wide decimal": ([Decimal("1" * 60 + ".5")], pa.decimal256(76, 1)),
    "date": ([dt.date(2024, 2, 29), dt.date(1, 1, 1)], pa.date32()),
    "time": ([dt.time(23, 59, 59, 999999), dt.time(0)], pa.time64("us")),
    "naive": ([dt.datetime(2024, 1, 1, 10, 0, 37), dt.datetime(1, 1, 1)], pa.timestamp("us")),
    "utc": (
        [dt.datetime(2024, 6, 1, 12, 30, 0, 123456, tzinfo=dt.UTC)],
        pa.timestamp("us", "+00:00"),
    ),
    "offset": (
        [dt.datetime(2024, 6, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30)))],
        pa.timestamp("us", "-05:30"),
    ),
    # A zone by name keeps each value's own offset (summer and winter).
    "zone": (
        [dt.datetime(2024, 7, 1, 12, tzinfo=PARIS), dt.datetime(2024, 1, 1, 12, tzinfo=PARIS)],
        pa.timestamp("us", "Europe/Paris"),
    ),
    "interval": ([dt.timedelta(days=-1, seconds=5, microseconds=7)], pa.duration("us")),
    "uuid": ([uuid.UUID("12345678-1234-5678-1234-567812345678")], pa.string()),
}
#: Columns no Arrow type holds exactly: each comes back from tagged text.
TAGGED: dict[str, list[Any]] = {
    "storage classes": [1, 1.5, "1", b"1", True],  # a SQLite column may hold any
    "decimal scales": [Decimal("1.5"), Decimal("1.50")],
    "special decimals": [Decimal("NaN"), Decimal("-Infinity"), Decimal("-0.00")],
    "positive exponent": [Decimal("-1E+30")],
    "zones": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 1)],
    "zoned time": [dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(hours=-3)))],
    "huge int": [2**80, -(2**70)],
    "json": [{"$bytes": "not a tag, a JSON object", "n": 2**70}, [1, "two", None]],
    "odd class": [bytearray(b"\x01")],
}


def _table(names: Sequence[str]) -> TableSchema:
    return TableSchema("t", tuple(ColumnSchema(name, "text") for name in names))


def _write(path: Path, names: Sequence[str], batches: Sequence[Sequence[Sequence[Any]]]) -> None:
    writer = ParquetWriter(path, _table(names))
    for rows in batches:
        writer.write_rows(rows)
    writer.close()


def _read(path: Path) -> list[list[Any]]:
    return [row for block in read_blocks(path) for row in block.row_lists()]


def _same(back: Sequence[Sequence[Any]], rows: Sequence[Sequence[Any]]) -> None:
    """Equal value for value, class for class, zone offset for zone offset (repr of a NaN
    is stable where == is not)."""
    assert [[(type(v), repr(v), _offset(v)) for v in row] for row in back] == [
        [(type(v), repr(v), _offset(v)) for v in row] for row in rows
    ]


def _offset(value: Any) -> Any:
    return value.utcoffset() if isinstance(value, dt.datetime | dt.time) else None


def _columns(values: dict[str, list[Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns of unequal lengths as rows, padded with nulls (a null above every value)."""
    height = 1 + max(map(len, values.values()))
    rows = [[None] * len(values) for _ in range(height)]
    for index, column in enumerate(values.values()):
        for row, value in enumerate(column, start=1):
            rows[row][index] = value
    return list(values), rows


def test_each_class_is_held_in_its_arrow_type_and_comes_back_exactly(tmp_path: Path) -> None:
    names, rows = _columns({name: values for name, (values, _) in TYPED.items()})
    _write(tmp_path / "t.parquet", names, [rows])
    _same(_read(tmp_path / "t.parquet"), rows)
    schema = pq.read_schema(tmp_path / "t.parquet")
    assert {field.name: field.type for field in schema} == {
        name: arrow for name, (_, arrow) in TYPED.items()
    }
    assert schema.field("uuid").metadata[b"dsdb.kind"] == b"uuid"
    assert schema.field("int").metadata == {b"dsdb.type": b"text"}  # the portable type


def test_values_no_arrow_type_holds_come_back_from_tagged_text(tmp_path: Path) -> None:
    names, rows = _columns(TAGGED)
    _write(tmp_path / "t.parquet", names, [rows])
    # Binary comes back as bytes, whatever class held it (as JSON lines keep it).
    expected = [[bytes(v) if isinstance(v, bytearray) else v for v in row] for row in rows]
    _same(_read(tmp_path / "t.parquet"), expected)
    schema = pq.read_schema(tmp_path / "t.parquet")
    assert {field.type for field in schema} == {pa.string()}
    assert {field.metadata[b"dsdb.kind"] for field in schema} == {b"tagged"}


@pytest.mark.parametrize("later", [1.5, "text", None])
def test_a_class_met_in_a_later_row_group_rewrites_the_rows_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, later: Any
) -> None:
    """Kinds are taken from the first rows: an integer column that holds a float (or text)
    after a row group was written is read back and written again as tagged text; a column
    of NULLs so far takes the kind of its first values."""
    monkeypatch.setattr(columnar, "ROW_GROUP_ROWS", 10)
    first = [[i, None] for i in range(25)]
    then = [[later, i] for i in range(25, 40)]
    _write(tmp_path / "t.parquet", ["n", "m"], [first[:12], first[12:], then])
    _same(_read(tmp_path / "t.parquet"), first + then)
    schema = pq.read_schema(tmp_path / "t.parquet")
    assert schema.field("m").type == pa.int64()
    assert schema.field("n").type == (pa.int64() if later is None else pa.string())
    assert not list(tmp_path.glob("*.old"))


def test_an_integer_beyond_64_bits_after_the_first_rows_is_tagged(tmp_path: Path) -> None:
    rows = [[1], [2], [2**64]]
    _write(tmp_path / "t.parquet", ["n"], [rows[:2], rows[2:]])
    _same(_read(tmp_path / "t.parquet"), rows)


def test_the_same_rows_give_the_same_bytes_and_a_scan_counts_them(tmp_path: Path) -> None:
    rows = [[i, f"row {i}", i / 3] for i in range(1000)]
    for name in ("a.parquet", "b.parquet"):
        _write(tmp_path / name, ["id", "label", "x"], [rows[:300], rows[300:]])
    first, second = (scan_data_file(tmp_path / name) for name in ("a.parquet", "b.parquet"))
    assert first == second
    assert (first.rows, first.damage) == (1000, None)
    assert first.size == (tmp_path / "a.parquet").stat().st_size


def test_a_table_without_rows_is_a_file_of_null_columns(tmp_path: Path) -> None:
    _write(tmp_path / "t.parquet", ["a", "b"], [])
    assert _read(tmp_path / "t.parquet") == []
    assert scan_data_file(tmp_path / "t.parquet").rows == 0
    assert pq.read_table(tmp_path / "t.parquet").column_names == ["a", "b"]


def test_large_values_are_written_in_row_groups_of_bounded_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(columnar, "ROW_GROUP_BYTES", 1 << 20)
    rows = [[i, "x" * 300_000] for i in range(12)]
    _write(tmp_path / "t.parquet", ["id", "text"], [rows[i : i + 2] for i in range(0, 12, 2)])
    assert pq.read_metadata(tmp_path / "t.parquet").num_row_groups == 3
    _same(_read(tmp_path / "t.parquet"), rows)
