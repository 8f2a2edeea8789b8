"""ConnectionManager.backup/restore/teardown: the notebook side of the same engine."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import dsdb_plan as dsdb
from dsdb_plan.databases import database_exists
from tests.helpers import make_flights_db, sqlite_url, table_names, table_rows
from tests.servers import ServerDatabase


@pytest.fixture
def mngr(tmp_path: Path) -> dsdb.ConnectionManager:
    make_flights_db(tmp_path / "local.db")
    manager = dsdb.ConnectionManager(
        {
            "local": {"driver": "sqlite", "database": str(tmp_path / "local.db")},
            "copy": {"driver": "sqlite", "database": str(tmp_path / "copy.db")},
        },
        user="analyst",
    )
    manager.backup_root = tmp_path / "backups"
    yield manager
    manager.close()


def test_backup_then_restore_by_connection_name(
    mngr: dsdb.ConnectionManager, tmp_path: Path
) -> None:
    info = mngr.backup("local")
    assert info.path.parent == tmp_path / "backups/local"
    assert info.total_rows == 203
    result = mngr.restore("local", "copy")
    assert result.rows == 203
    for table in ("airlines", "flights"):
        assert table_rows(sqlite_url(tmp_path / "copy.db"), table) == table_rows(
            sqlite_url(tmp_path / "local.db"), table
        )


def test_restore_refuses_target_with_data_unless_replacing(mngr: dsdb.ConnectionManager) -> None:
    info = mngr.backup("local")
    mngr.restore(info.path, "copy")
    with pytest.raises(dsdb.DsdbError, match="airlines"):
        mngr.restore(info.path, "copy")
    assert mngr.restore(info.path, "copy", replace_existing=True).rows == 203


def test_restore_takes_a_policy_for_rows_whose_key_points_at_no_row(
    mngr: dsdb.ConnectionManager, tmp_path: Path
) -> None:
    with sqlite3.connect(tmp_path / "local.db") as db:
        db.execute("DELETE FROM airlines WHERE carrier = 'DL'")  # SQLite does not refuse
    info = mngr.backup("local")
    with pytest.raises(dsdb.DsdbError, match=r"flights.carrier → airlines.carrier: 67 rows"):
        mngr.restore(info.path, "copy")
    assert table_names(sqlite_url(tmp_path / "copy.db")) == []
    result = mngr.restore(info.path, "copy", on_dangling="skip")
    assert result.rows == 2 + 200 - 67
    source = table_rows(sqlite_url(tmp_path / "local.db"), "flights")
    kept = table_rows(sqlite_url(tmp_path / "copy.db"), "flights")
    assert kept == [row for row in source if row[1] != "DL"]


@pytest.mark.postgres
def test_restore_into_postgresql(
    mngr: dsdb.ConnectionManager, postgres_db: ServerDatabase, tmp_path: Path
) -> None:
    mngr.add_connections({"pg": {"url": postgres_db.url_string}})
    mngr.restore(mngr.backup("local").path, "pg")
    assert table_rows(postgres_db.url, "flights") == table_rows(
        sqlite_url(tmp_path / "local.db"), "flights"
    )


def test_teardown_takes_a_final_backup_first(mngr: dsdb.ConnectionManager, tmp_path: Path) -> None:
    info = mngr.teardown("local", tables=["flights"])
    assert info is not None and info.total_rows == 200
    assert table_names(sqlite_url(tmp_path / "local.db")) == ["airlines"]
    mngr.restore(info.path, "local")
    assert len(table_rows(sqlite_url(tmp_path / "local.db"), "flights")) == 200


def test_teardown_of_whole_database_deletes_the_file(
    mngr: dsdb.ConnectionManager, tmp_path: Path
) -> None:
    mngr.connect("local")
    mngr.teardown("local", drop_database=True, final_backup=False)
    assert not (tmp_path / "local.db").exists()


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_teardown_drops_a_whole_server_database_after_a_final_backup(
    mngr: dsdb.ConnectionManager, request: pytest.FixtureRequest, kind: str
) -> None:
    server: ServerDatabase = request.getfixturevalue(f"{kind}_db")
    doomed = ServerDatabase(server.kind, server.admin_url, f"{server.name}_doomed")
    doomed.create()
    try:
        mngr.add_connections({"doomed": {"url": doomed.url_string}})
        mngr.restore(mngr.backup("local").path, "doomed")
        assert database_exists(mngr.connection("doomed"))

        info = mngr.teardown("doomed", drop_database=True)

        assert not database_exists(mngr.connection("doomed"))
        assert info is not None and info.total_rows == 203
        assert info.source_dialect == doomed.url.get_backend_name()
    finally:
        doomed.drop()


def test_protected_connection_refuses_teardown(tmp_path: Path) -> None:
    make_flights_db(tmp_path / "keep.db")
    mngr = dsdb.ConnectionManager(
        {"keep": {"driver": "sqlite", "database": str(tmp_path / "keep.db"), "protect": True}}
    )
    with pytest.raises(dsdb.DsdbError, match="protected"):
        mngr.teardown("keep")
    assert table_names(sqlite_url(tmp_path / "keep.db")) == ["airlines", "flights"]


def test_restore_over_protected_data_is_refused(tmp_path: Path) -> None:
    make_flights_db(tmp_path / "source.db")
    make_flights_db(tmp_path / "keep.db", flights=5)
    mngr = dsdb.ConnectionManager(
        {
            "source": {"driver": "sqlite", "database": str(tmp_path / "source.db")},
            "keep": {"driver": "sqlite", "database": str(tmp_path / "keep.db"), "protect": True},
        }
    )
    mngr.backup_root = tmp_path / "backups"
    info = mngr.backup("source")
    with pytest.raises(dsdb.DsdbError, match="protected"):
        mngr.restore(info.path, "keep", replace_existing=True)
    assert len(table_rows(sqlite_url(tmp_path / "keep.db"), "flights")) == 5
    mngr.close()


def test_a_bad_filter_is_named_where_it_is(tmp_path: Path) -> None:
    make_flights_db(tmp_path / "local.db")
    mngr = dsdb.ConnectionManager(
        {
            "local": {"driver": "sqlite", "database": str(tmp_path / "local.db")},
            "copy": {"driver": "sqlite", "database": str(tmp_path / "copy.db")},
        }
    )
    with pytest.raises(dsdb.DsdbError) as raised:
        mngr.migrate("local", "copy", tables=["flights"], where={"carrier": {"in": "UA"}})
    assert str(raised.value) == (
        "migrate: tables.flights.where.carrier.in: Input should be a valid list"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m: m.backup("local", tables="flights"),
            "backup: tables: Input should be a valid list",
        ),
        (lambda m: m.teardown("local", tables=5), "teardown: tables: Input should be a valid list"),
        (lambda m: m.migrate("local", "copy", mode="upsrt"), "migrate: mode: Input should be"),
        (lambda m: m.migrate("local", "copy", verify="rows"), "migrate: verify: Input should be"),
        (lambda m: m.migrate("local", "copy", where={"carrier": "UA"}), "migrate: `where` needs"),
    ],
)
def test_a_wrong_argument_is_a_value_error_naming_it(
    mngr: dsdb.ConnectionManager, tmp_path: Path, call: Any, message: str
) -> None:
    with pytest.raises(dsdb.ArgumentError) as raised:
        call(mngr)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, dsdb.DsdbError)
    assert str(raised.value).startswith(message)
    assert not (tmp_path / "copy.db").exists()


def test_migrate_is_the_plan_and_apply_of_one_migration(
    mngr: dsdb.ConnectionManager, tmp_path: Path
) -> None:
    outcomes = mngr.migrate("local", "copy", tables=["flights"], follow="parents")
    assert [(o.table, o.rows_copied) for o in outcomes] == [("airlines", 3), ("flights", 200)]
    for table in ("airlines", "flights"):
        assert table_rows(sqlite_url(tmp_path / "copy.db"), table) == table_rows(
            sqlite_url(tmp_path / "local.db"), table
        )


def test_migrate_at_counts_verifies_row_counts_and_lands_every_row(
    mngr: dsdb.ConnectionManager, tmp_path: Path
) -> None:
    outcomes = mngr.migrate("local", "copy", tables=["flights"], follow="parents", verify="counts")
    assert [(o.table, o.rows_copied) for o in outcomes] == [("airlines", 3), ("flights", 200)]
    assert all(o.subset is None and o.written is None for o in outcomes)  # no content read
    for table in ("airlines", "flights"):
        assert table_rows(sqlite_url(tmp_path / "copy.db"), table) == table_rows(
            sqlite_url(tmp_path / "local.db"), table
        )


def test_migrate_refuses_what_a_plan_refuses_before_writing(tmp_path: Path) -> None:
    make_flights_db(tmp_path / "local.db")
    make_flights_db(tmp_path / "keep.db", flights=5)
    mngr = dsdb.ConnectionManager(
        {
            "local": {"driver": "sqlite", "database": str(tmp_path / "local.db")},
            "keep": {"driver": "sqlite", "database": str(tmp_path / "keep.db"), "protect": True},
        }
    )
    with pytest.raises(dsdb.DsdbError, match="protected"):
        mngr.migrate("local", "keep", tables=["flights"], mode="replace")
    assert len(table_rows(sqlite_url(tmp_path / "keep.db"), "flights")) == 5
    mngr.close()


def test_migrate_refuses_dangling_references_unless_told_to_skip_them(
    mngr: dsdb.ConnectionManager, tmp_path: Path
) -> None:
    local = tmp_path / "local.db"
    with sqlite3.connect(local) as db:  # SQLite does not enforce the key: flight 1 dangles
        db.execute("UPDATE flights SET carrier = 'XX' WHERE id = 1")
    with pytest.raises(dsdb.DsdbError, match=r"flights\.carrier → airlines\.carrier: 1 row"):
        mngr.migrate("local", "copy", tables=["flights"], follow="parents")
    assert (
        not (tmp_path / "copy.db").exists() or table_names(sqlite_url(tmp_path / "copy.db")) == []
    )
    outcomes = mngr.migrate(
        "local", "copy", tables=["flights"], follow="parents", on_dangling="skip"
    )
    assert [(o.table, o.rows_copied) for o in outcomes] == [("airlines", 3), ("flights", 199)]
    copied = table_rows(sqlite_url(tmp_path / "copy.db"), "flights")
    assert sorted(row[0] for row in copied) == list(range(2, 201))
