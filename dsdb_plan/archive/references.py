"""References a backup's rows break: counted from its data files, before a restore writes.

A database that does not enforce its foreign keys (SQLite unless asked, MySQL with checks
off) holds rows whose reference points at no row, and its backup holds them too. Restored
as they are, they fail the target's key after every row is loaded (PostgreSQL, DuckDB) or
sit under a key they break (MySQL creates keys unchecked, SQLite does not check them on
dsdb's connections). So a restore reads the key columns of the tables it restores and
finds, per declared foreign key between them, the rows whose reference is in none of the
parent's rows; a NULL in any column of the reference is not dangling (MATCH SIMPLE), as
for `migrate/integrity.py`, whose `on_dangling` policies the restore takes:

- ``refuse``: the plan fails, naming key, count and a few values;
- ``skip``: those rows are not loaded, nor, recursively, the rows pointing at them;
- ``keep``: the rows are loaded and the keys they break are left out of the target.

Only the key columns are read (a Parquet file reads no other column), each table's once.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

from dsdb_plan.archive.info import BackupInfo
from dsdb_plan.archive.reader import iter_columns
from dsdb_plan.dbschema import ForeignKeySchema, TableSchema
from dsdb_plan.migrate.integrity import EXAMPLES
from dsdb_plan.payloads import Dangling

#: A reference's value: the column's value, or a tuple for several columns; None when any
#: column is NULL (it points nowhere and is not dangling).
_Key = Hashable | None


def references(
    tables: Sequence[TableSchema],
) -> Iterator[tuple[TableSchema, ForeignKeySchema]]:
    """(child, foreign key) for every foreign key between `tables`."""
    names = {table.name for table in tables}
    for table in tables:
        for fk in table.foreign_keys:
            if fk.ref_table in names:
                yield table, fk


class _Keys:
    """The values of a table's key columns in file order, each read once."""

    def __init__(self, info: BackupInfo) -> None:
        self.info = info
        self._read: dict[tuple[str, tuple[str, ...]], list[_Key]] = {}

    def __call__(self, table: str, columns: tuple[str, ...]) -> list[_Key]:
        found = self._read.get((table, columns))
        if found is None:
            found = self._read[(table, columns)] = list(self._values(table, columns))
        return found

    def _values(self, table: str, columns: tuple[str, ...]) -> Iterator[_Key]:
        for batch in iter_columns(self.info, table, columns):
            if len(columns) == 1:
                yield from batch[0]
            else:
                yield from (None if None in row else row for row in zip(*batch, strict=True))


def count_dangling(
    info: BackupInfo, tables: Sequence[TableSchema], examples: int = EXAMPLES
) -> list[Dangling]:
    """The dangling references of `tables` in backup `info`, one entry per foreign key
    that has any."""
    keys = _Keys(info)
    found = []
    for table, fk in references(tables):
        present = set(keys(fk.ref_table, fk.ref_columns))
        dangling = [
            key for key in keys(table.name, fk.columns) if key is not None and key not in present
        ]
        if not dangling:
            continue
        values = _ordered(set(dangling))
        found.append(
            Dangling(
                table.name,
                fk.columns,
                fk.ref_table,
                fk.ref_columns,
                len(dangling),
                tuple(repr(value) for value in values[:examples]),
                more=len(values) > examples,
            )
        )
    return found


def rows_kept(info: BackupInfo, tables: Sequence[TableSchema]) -> dict[str, list[bool]]:
    """For `skip`: per table that has rows to leave out, whether each row (in file order)
    is loaded. A row is left out when its reference names no loaded row of the parent, so
    the rows pointing at a left-out row go too, in its own table or across a cycle: the
    passes repeat until one leaves out nothing more."""
    keys = _Keys(info)
    kept: dict[str, list[bool]] = {}
    found = list(references(tables))
    changed = True
    while changed:
        changed = False
        for table, fk in found:
            parent = kept.get(fk.ref_table)
            present = {
                key
                for index, key in enumerate(keys(fk.ref_table, fk.ref_columns))
                if parent is None or parent[index]
            }
            held = keys(table.name, fk.columns)
            mask = kept.get(table.name)
            for index, key in enumerate(held):
                if key is not None and key not in present and (mask is None or mask[index]):
                    if mask is None:
                        mask = kept[table.name] = [True] * len(held)
                    mask[index] = False
                    changed = True
    return kept


def refusal(dangling: Sequence[Dangling], where: str) -> str:
    """The error for dangling references under `refuse`; `where` names the restore."""
    lines = "; ".join(d.describe() for d in dangling)
    return (
        f"{where}: the backup holds rows whose foreign key points at no row of it: {lines}; "
        "set `on_dangling: skip` to leave those rows out, or `on_dangling: keep` to restore "
        "them without that key"
    )


def _ordered(values: set[Hashable]) -> list[Hashable]:
    """`values` sorted, or by their text where they do not compare (SQLite mixes types)."""
    try:
        return sorted(values)  # type: ignore[type-var]
    except TypeError:
        return sorted(values, key=repr)
