"""`ConnectionManager`: the explainer notebook of the original package, cell by cell, and more.

The notebook (`connection_manager_explainer.md` in the seed) wrote under /active/examples;
here every path lives in the test's folder, and the working folder is that folder too, so
`dsdb.LOCAL`'s default ./local_database/local.db lands there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

import dsdb_plan as dsdb
from tests.servers import ServerDatabase

USER = "jacksonb"


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The notebook's /active/examples/local_database folder."""
    return tmp_path / "local_database"


def _sqlite(path: Path) -> dict[str, str]:
    return {"driver": "sqlite", "database": str(path)}


@pytest.fixture
def notebook_mngr(store: Path) -> dsdb.ConnectionManager:
    """The manager as the notebook leaves it before its error cells: prod, stg and custom."""
    mngr = dsdb.ConnectionManager(
        {"prod": _sqlite(store / "prod.db"), "stg": _sqlite(store / "stg.db")}, user=USER
    )
    mngr.add_connections(dsdb.LOCAL, local_store=store / "custom_store.db")
    mngr.rename_connection(dsdb.LOCAL, "custom")
    return mngr


# -- the notebook's cells, in order ---------------------------------------------------------


def test_cell_empty_manager() -> None:
    mngr = dsdb.ConnectionManager(user=USER)

    assert len(mngr) == 0
    assert mngr.user == USER
    assert "no connections" in repr(mngr)


def test_cell_add_local(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager(user=USER)

    mngr.add_connections(dsdb.LOCAL)

    expected = tmp_path / "local_database" / "local.db"
    assert list(mngr) == [dsdb.LOCAL]
    assert mngr[dsdb.LOCAL] == {"driver": "sqlite", "database": str(expected)}
    assert expected.parent.is_dir()  # the folder is made; the database only on first write
    assert f"{dsdb.LOCAL}  sqlite" in str(mngr)
    assert str(expected) in str(mngr)


def test_cell_add_dict_config(store: Path) -> None:
    mngr = dsdb.ConnectionManager(dsdb.LOCAL, user=USER)

    mngr.add_connections({"local_2": _sqlite(store / "local_2.db")})

    assert list(mngr) == [dsdb.LOCAL, "local_2"]
    assert mngr["local_2"]["database"] == str(store / "local_2.db")
    assert str(store / "local_2.db") in repr(mngr)


def test_cell_override_existing(store: Path) -> None:
    mngr = dsdb.ConnectionManager(dsdb.LOCAL, user=USER)
    mngr.add_connections({"local_2": _sqlite(store / "local_2.db")})

    mngr.add_connections({dsdb.LOCAL: _sqlite(store / "remake.db")}, override_existing=True)

    assert len(mngr) == 2
    assert mngr[dsdb.LOCAL]["database"] == str(store / "remake.db")


def test_cell_local_with_local_store(store: Path) -> None:
    mngr = dsdb.ConnectionManager(dsdb.LOCAL, local_store=store / "passed_path.db", user=USER)

    assert list(mngr) == [dsdb.LOCAL]
    assert mngr[dsdb.LOCAL]["database"] == str(store / "passed_path.db")
    assert store.is_dir()


def test_cell_multiple_configs_at_once(store: Path) -> None:
    config = {"prod": _sqlite(store / "prod.db"), "stg": _sqlite(store / "stg.db")}

    mngr = dsdb.ConnectionManager(config, user=USER)

    assert list(mngr) == ["prod", "stg"]
    assert mngr["stg"]["database"] == str(store / "stg.db")


def test_cell_local_with_custom_link(store: Path) -> None:
    mngr = dsdb.ConnectionManager(
        {"prod": _sqlite(store / "prod.db"), "stg": _sqlite(store / "stg.db")}, user=USER
    )

    mngr.add_connections(dsdb.LOCAL, local_store=store / "custom_store.db")

    assert list(mngr) == ["prod", "stg", dsdb.LOCAL]
    assert mngr[dsdb.LOCAL]["database"] == str(store / "custom_store.db")


def test_cell_rename_connection(notebook_mngr: dsdb.ConnectionManager, store: Path) -> None:
    assert dsdb.LOCAL not in notebook_mngr
    assert "custom" in notebook_mngr
    assert "custom" in repr(notebook_mngr)
    assert str(store / "custom_store.db") in repr(notebook_mngr)


def test_cell_config_by_key(notebook_mngr: dsdb.ConnectionManager, store: Path) -> None:
    assert notebook_mngr["custom"] == {
        "driver": "sqlite",
        "database": str(store / "custom_store.db"),
    }


def test_cell_connection_already_exists(notebook_mngr: dsdb.ConnectionManager) -> None:
    notebook_mngr.add_connections(dsdb.LOCAL)
    before = repr(notebook_mngr)

    with pytest.raises(dsdb.ConnectionExistsError, match=f"'{dsdb.LOCAL}' already exists"):
        notebook_mngr.add_connections(dsdb.LOCAL)

    assert repr(notebook_mngr) == before


def test_cell_link_already_exists(notebook_mngr: dsdb.ConnectionManager, store: Path) -> None:
    before = repr(notebook_mngr)

    with pytest.raises(dsdb.LinkExistsError, match="link already exists: 'custom'"):
        notebook_mngr.add_connections({"custom": _sqlite(store / "custom_store.db")})

    assert repr(notebook_mngr) == before


def test_cell_missing_driver(notebook_mngr: dsdb.ConnectionManager, store: Path) -> None:
    with pytest.raises(dsdb.MissingDriverError, match="Connection 'custom' requires a driver"):
        notebook_mngr.add_connections({"custom": {"database": str(store / "custom_store.db")}})


def test_cell_missing_link(notebook_mngr: dsdb.ConnectionManager) -> None:
    with pytest.raises(dsdb.MissingLinkError, match="Connection 'custom' requires a link"):
        notebook_mngr.add_connections({"custom": {"driver": "sqlite"}})


# -- checks beyond the notebook --------------------------------------------------------------


def test_errors_are_value_errors_and_a_key_error() -> None:
    for error in (
        dsdb.MissingDriverError,
        dsdb.MissingLinkError,
        dsdb.ConnectionExistsError,
        dsdb.LinkExistsError,
        dsdb.ConnectionTypeError,
    ):
        assert issubclass(error, dsdb.DsdbError)
        assert issubclass(error, ValueError)
    assert issubclass(dsdb.ConnectionTypeError, TypeError)
    assert issubclass(dsdb.UnknownConnectionError, KeyError)


@pytest.mark.parametrize(
    ("entry", "error", "phrase"),
    [
        ({"driver": 5, "database": "x.db"}, dsdb.ConnectionTypeError, "driver: must be a string"),
        ({"driver": "sqlite", "database": 5}, dsdb.ConnectionTypeError, "must be a string"),
        ("sqlite:///x.db", dsdb.ConnectionTypeError, "must be a mapping"),
        (
            {"driver": "postgress", "database": "x"},
            dsdb.ConnectionConfigError,
            "did you mean 'postgresql'",
        ),
        ({"driver": "sqlite", "database": "x.db", "hots": "h"}, dsdb.ConnectionConfigError, "hots"),
    ],
)
def test_bad_entry_is_refused_naming_the_connection(
    entry: object, error: type[Exception], phrase: str
) -> None:
    mngr = dsdb.ConnectionManager(user=USER)

    with pytest.raises(error, match=phrase) as raised:
        mngr.add_connections({"prod": entry})

    assert "'prod'" in str(raised.value)
    assert "prod" not in mngr


def test_every_entry_is_checked_before_any_is_added(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager(user=USER)

    with pytest.raises(dsdb.MissingLinkError, match="'broken'"):
        mngr.add_connections(
            {"good": _sqlite(tmp_path / "good.db"), "broken": {"driver": "sqlite"}}
        )

    assert len(mngr) == 0


def test_a_clash_late_in_the_config_adds_nothing(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager({"first": _sqlite(tmp_path / "a.db")}, user=USER)

    with pytest.raises(dsdb.LinkExistsError, match="'first'"):
        mngr.add_connections(
            {"new": _sqlite(tmp_path / "b.db"), "again": _sqlite(tmp_path / "a.db")}
        )

    assert list(mngr) == ["first"]


def test_two_new_entries_for_one_database_are_refused(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager(user=USER)

    same = _sqlite(tmp_path / "a.db")

    with pytest.raises(dsdb.LinkExistsError, match=r"'one'.*'two'"):
        mngr.add_connections({"one": same, "two": same})

    assert len(mngr) == 0


def test_override_existing_replaces_the_connection(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager({"db": _sqlite(tmp_path / "a.db")}, user=USER)

    mngr.add_connections({"db": _sqlite(tmp_path / "b.db")}, override_existing=True)

    assert mngr["db"]["database"] == str(tmp_path / "b.db")


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        ({"driver": "sqlite", "database": "x.db"}, {"driver": "sqlite", "database": "./x.db"}),
        ({"driver": "sqlite", "database": "x.db"}, {"driver": "sqlite", "database": "sub/../x.db"}),
        ({"driver": "sqlite", "database": "x.db"}, {"url": "sqlite:///x.db"}),
        (
            {"driver": "postgresql", "host": "localhost", "database": "flights"},
            {"driver": "postgres", "host": "127.0.0.1", "port": 5432, "database": "flights"},
        ),
        (
            {"driver": "postgresql", "host": "db.internal", "database": "flights"},
            {"url": "postgresql://loader:pw@DB.internal:5432/flights"},
        ),
        (
            {"driver": "mysql", "host": "localhost", "database": "flights"},
            {"driver": "mariadb", "host": "127.0.0.1", "port": 3306, "database": "flights"},
        ),
    ],
    ids=["dot-slash", "dot-dot", "url", "default-port", "url-form", "mysql-is-mariadb"],
)
def test_links_compare_by_what_they_resolve_to(
    existing: dict[str, object], new: dict[str, object]
) -> None:
    mngr = dsdb.ConnectionManager({"first": existing}, user=USER)

    with pytest.raises(dsdb.LinkExistsError, match="'first'"):
        mngr.add_connections({"second": new})


def test_relative_and_absolute_path_to_one_file_are_one_link(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager({"relative": {"driver": "sqlite", "database": "x.db"}}, user=USER)

    with pytest.raises(dsdb.LinkExistsError, match="'relative'"):
        mngr.add_connections({"absolute": _sqlite(tmp_path / "x.db")})


@pytest.mark.parametrize(
    "other",
    [
        {"driver": "postgresql", "host": "localhost", "port": 5433, "database": "flights"},
        {"driver": "postgresql", "host": "localhost", "database": "flights_2"},
        {"driver": "postgresql", "host": "db.internal", "database": "flights"},
        {"driver": "mysql", "host": "localhost", "database": "flights"},
    ],
    ids=["port", "database", "host", "dialect"],
)
def test_other_databases_are_other_links(other: dict[str, object]) -> None:
    mngr = dsdb.ConnectionManager(
        {"first": {"driver": "postgresql", "host": "localhost", "database": "flights"}}, user=USER
    )

    mngr.add_connections({"second": other})

    assert list(mngr) == ["first", "second"]


def test_relative_sqlite_path_resolves_against_the_working_folder(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager({"db": {"driver": "sqlite", "database": "data/x.db"}}, user=USER)

    assert mngr["db"]["database"] == str(tmp_path / "data" / "x.db")


def test_repr_and_str_mask_passwords() -> None:
    mngr = dsdb.ConnectionManager(
        {
            "fields": {
                "driver": "postgresql",
                "host": "db",
                "database": "a",
                "user": "u",
                "password": "field-pass-7c1",
            },
            "url": {"url": "postgresql://u:url-pass-4d9@db/b"},
        },
        user=USER,
    )

    shown = [
        repr(mngr),
        str(mngr),
        repr(mngr["fields"]),
        repr(mngr["url"]),
        repr(mngr.connection("fields")),
        str(mngr.connection("url")),
        repr(mngr.connection("url")),
        mngr.connection("url").model_dump_json(),
    ]
    for text in shown:
        assert "field-pass-7c1" not in text
        assert "url-pass-4d9" not in text
    assert "postgresql+psycopg://u:***@db/a" in repr(mngr)
    assert "postgresql+psycopg://u:***@db/b" in repr(mngr)


def test_the_password_still_reaches_the_driver() -> None:
    mngr = dsdb.ConnectionManager(
        {"db": {"driver": "postgresql", "host": "db", "database": "a", "password": "pw-3e8"}},
        user=USER,
    )

    assert mngr.connection("db").sqlalchemy_url().password == "pw-3e8"


def test_in_iteration_and_len(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager(
        {"a": _sqlite(tmp_path / "a.db"), "b": _sqlite(tmp_path / "b.db")}, user=USER
    )

    assert "a" in mngr
    assert "c" not in mngr
    assert list(mngr) == ["a", "b"]
    assert len(mngr) == 2


def test_unknown_connection_is_a_key_error_naming_it(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager({"a": _sqlite(tmp_path / "a.db")}, user=USER)

    with pytest.raises(KeyError) as raised:
        mngr["nope"]

    assert isinstance(raised.value, dsdb.UnknownConnectionError)
    assert str(raised.value) == "No connection named 'nope' (known: 'a')."
    with pytest.raises(dsdb.UnknownConnectionError, match="'nope'"):
        mngr.connect("nope")


def test_rename_refuses_an_unknown_current_name(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager({"a": _sqlite(tmp_path / "a.db")}, user=USER)

    with pytest.raises(dsdb.UnknownConnectionError, match="'nope'"):
        mngr.rename_connection("nope", "b")

    assert list(mngr) == ["a"]


def test_rename_refuses_an_existing_new_name(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager(
        {"a": _sqlite(tmp_path / "a.db"), "b": _sqlite(tmp_path / "b.db")}, user=USER
    )

    with pytest.raises(dsdb.ConnectionExistsError, match="'b' already exists"):
        mngr.rename_connection("a", "b")

    assert mngr["a"]["database"] == str(tmp_path / "a.db")


def test_json_config_file(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "connections.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"prod": {"driver": "sqlite", "database": "prod.db"}}))

    mngr = dsdb.ConnectionManager(str(config), user=USER)

    # Relative paths in a config file resolve against the file's folder.
    assert mngr["prod"]["database"] == str(tmp_path / "conf" / "prod.db")


def test_yaml_manifest_as_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSDB_TEST_PASSWORD", "yaml-pass-2b6")
    config = tmp_path / "dsdb.yaml"
    config.write_text(
        "version: 1\n"
        "connections:\n"
        "  local: {driver: sqlite, database: data/local.db}\n"
        "  prod: {driver: postgresql, host: db, database: a,\n"
        "         password: '${env:DSDB_TEST_PASSWORD}'}\n"
    )

    mngr = dsdb.ConnectionManager(config, user=USER)

    assert list(mngr) == ["local", "prod"]
    assert mngr["local"]["database"] == str(tmp_path / "data" / "local.db")
    assert mngr.connection("prod").sqlalchemy_url().password == "yaml-pass-2b6"


def test_yaml_config_with_duplicate_names_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "connections.yaml"
    config.write_text("a: {driver: sqlite, database: a.db}\na: {driver: sqlite, database: b.db}\n")

    with pytest.raises(dsdb.ManifestError, match=r"connections.yaml:2:1: a: duplicate key 'a'"):
        dsdb.ConnectionManager(config, user=USER)


def test_connect_returns_one_engine_per_connection(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager(dsdb.LOCAL, user=USER)

    engine = mngr.connect(dsdb.LOCAL)

    assert mngr.connect(dsdb.LOCAL) is engine
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    assert (tmp_path / "local_database" / "local.db").is_file()
    mngr.rename_connection(dsdb.LOCAL, "renamed")
    assert mngr.connect("renamed") is engine
    mngr.close()


def test_override_gives_a_new_engine(tmp_path: Path) -> None:
    mngr = dsdb.ConnectionManager({"db": _sqlite(tmp_path / "a.db")}, user=USER)
    first = mngr.connect("db")

    mngr.add_connections({"db": _sqlite(tmp_path / "b.db")}, override_existing=True)

    assert mngr.connect("db") is not first
    assert mngr.connect("db").url.database == str(tmp_path / "b.db")
    mngr.close()


def _server_fields(server: ServerDatabase, driver: str) -> dict[str, object]:
    url = server.url
    fields: dict[str, object] = {"driver": driver, "host": url.host, "database": url.database}
    fields.update(
        {
            k: v
            for k, v in {"port": url.port, "user": url.username, "password": url.password}.items()
            if v is not None
        }
    )
    return fields


@pytest.mark.postgres
def test_connect_to_postgresql(postgres_db: ServerDatabase) -> None:
    mngr = dsdb.ConnectionManager({"fields": _server_fields(postgres_db, "postgresql")}, user=USER)

    engine = mngr.connect("fields")

    assert mngr.connect("fields") is engine
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar() == postgres_db.name
    mngr.close()


@pytest.mark.mariadb
def test_connect_to_mariadb(mariadb_db: ServerDatabase) -> None:
    mngr = dsdb.ConnectionManager({"maria": {"url": mariadb_db.url_string}}, user=USER)

    engine = mngr.connect("maria")

    assert mngr.connect("maria") is engine
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT DATABASE()")).scalar() == mariadb_db.name
    mngr.close()


@pytest.mark.mariadb
def test_same_mariadb_by_url_and_by_fields_is_one_link(mariadb_db: ServerDatabase) -> None:
    mngr = dsdb.ConnectionManager({"by_url": {"url": mariadb_db.url_string}}, user=USER)

    with pytest.raises(dsdb.LinkExistsError, match="'by_url'"):
        mngr.add_connections({"by_fields": _server_fields(mariadb_db, "mariadb")})
