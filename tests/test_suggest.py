"""`dsdb references suggest`: likely references by name and type, counted in the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dsdb_plan.dbschema import ColumnSchema, ForeignKeySchema, TableSchema
from dsdb_plan.migrate.suggest import Candidate, candidates, key_candidates, singular
from tests.helpers import run_cli

CUSTOMERS = TableSchema("customers", (ColumnSchema("id", "integer"),), ("id",))
CATEGORIES = TableSchema("categories", (ColumnSchema("id", "bigint"),), ("id",))
ORDERS = TableSchema(
    "orders",
    (
        ColumnSchema("id", "integer"),
        ColumnSchema("customer_id", "bigint"),
        ColumnSchema("category_id", "text"),  # text: not an integer key's reference
        ColumnSchema("note", "text"),
    ),
    ("id",),
)


@pytest.mark.parametrize(
    ("plural", "one"),
    [("customers", "customer"), ("categories", "category"), ("boxes", "box"), ("class", "class")],
)
def test_singular(plural: str, one: str) -> None:
    assert singular(plural) == one


def test_candidates_by_name_and_type_family() -> None:
    assert candidates([CUSTOMERS, CATEGORIES, ORDERS]) == [
        Candidate("orders", "customer_id", "customers", "id")
    ]


def test_a_declared_foreign_key_is_not_suggested_again() -> None:
    declared = {
        "orders": {
            fk.columns for fk in (ForeignKeySchema(None, ("customer_id",), "customers", ("id",)),)
        }
    }
    assert candidates([CUSTOMERS, ORDERS], declared) == []


def test_tables_without_a_key_offer_columns_named_like_another_tables() -> None:
    planes = TableSchema(
        "planes", (ColumnSchema("tailnum", "text"), ColumnSchema("seats", "integer"))
    )
    flights = TableSchema(
        "flights", (ColumnSchema("id", "integer"), ColumnSchema("tailnum", "text"))
    )
    assert key_candidates([planes, flights]) == {
        "planes": ["tailnum"],
        "flights": ["id", "tailnum"],
    }
    assert candidates([planes, flights], unique={"planes": {"tailnum"}}) == [
        Candidate("flights", "tailnum", "planes", "tailnum")
    ]
    assert candidates([planes, flights], unique={}) == []


def test_suggest_prints_yaml_with_dangling_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(tmp_path / "shop.db") as db:
        db.executescript(
            """
            CREATE TABLE customers (id INTEGER, name TEXT);
            CREATE TABLE orders (id INTEGER, customer_id INTEGER, sku TEXT);
            CREATE TABLE products (sku TEXT, price REAL);
            INSERT INTO customers VALUES (1, 'a'), (2, 'b');
            INSERT INTO orders VALUES (10, 1, 'X'), (11, 2, 'Y'), (12, 3, 'X'), (13, NULL, 'Z');
            INSERT INTO products VALUES ('X', 1.0), ('Y', 2.0);
            """
        )
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text("version: 1\nconnections:\n  shop: {driver: sqlite, database: shop.db}\n")
    result = run_cli(capsys, "references", "suggest", "shop", manifest)
    assert result.code == 0, result.text
    assert result.out == (
        "# Likely references in connection 'shop', by name and type; dangling: rows\n"
        "# whose value the parent does not hold. Paste what is right under the connection.\n"
        "references:\n"
        "  orders.customer_id: customers.id  # 1 of 3 rows dangling\n"
        "  orders.sku: products.sku          # 1 of 4 rows dangling\n"
    )


def test_suggest_for_an_unknown_connection_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text("version: 1\nconnections:\n  shop: {driver: sqlite, database: shop.db}\n")
    result = run_cli(capsys, "references", "suggest", "shops", manifest)
    assert (result.code, result.err) == (1, "Error: No connection named 'shops'.\n")
