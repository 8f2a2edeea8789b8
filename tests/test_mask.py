"""Masking: deterministic per-value transforms that keep types, lengths, uniqueness and joins."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from dsdb_plan.dbschema import ColumnSchema, ForeignKeySchema, IndexSchema, TableSchema
from dsdb_plan.errors import PlanError
from dsdb_plan.migrate.mask import Masker, MaskRule, resolve_masks, unmasked_sensitive
from tests.helpers import run_cli
from tests.servers import ServerDatabase

INT = ColumnSchema("n", "integer")
TEXT = ColumnSchema("t", "text")


def test_the_same_seed_masks_the_same_way_and_another_seed_otherwise() -> None:
    one, again, other = Masker("s3cret"), Masker("s3cret"), Masker("other")
    for name, column, value in [
        ("hash", INT, 42),
        ("hash", TEXT, "alice@example.com"),
        ("fake_email", TEXT, "alice@example.com"),
        ("fake_name", TEXT, "Alice Smith"),
        ("keep_format", TEXT, "555-123-4567"),
        ("shift_days", ColumnSchema("d", "date"), "1980-05-17"),
    ]:
        first = one.transform(name, column, unique=False)(value)
        assert first == again.transform(name, column, unique=False)(value)
        assert first != other.transform(name, column, unique=False)(value)
        assert first != value


def test_hashed_integers_are_unique_and_stay_in_their_size_class() -> None:
    masked = Masker("k").transform("hash", INT, unique=True)
    small = [masked(v) for v in range(5000)]
    assert len(set(small)) == 5000 and all(0 <= v < 2**15 for v in small)
    middle = [masked(v) for v in range(2**15, 2**15 + 2000)]
    assert len(set(middle)) == 2000 and all(2**15 <= v < 2**31 for v in middle)
    big = masked(2**40)
    assert 2**31 <= big < 2**63
    assert masked(-5) < 0 and masked(None) is None


def test_masked_text_keeps_its_type_and_fits_its_column() -> None:
    masker = Masker("k")
    short = ColumnSchema("code", "varchar", length=10)
    assert len(masker.transform("hash", short, unique=True)("AB")) == 10
    assert len(masker.transform("hash", TEXT, unique=True)("AB")) == 16
    assert len(masker.transform("hash", TEXT, unique=True)("x" * 40)) == 40
    assert len(masker.transform("fake_name", short, unique=False)("Alice")) <= 10
    phone = masker.transform("keep_format", TEXT, unique=False)("+1 (555) 123-4567")
    assert [c.isdigit() for c in phone] == [c.isdigit() for c in "+1 (555) 123-4567"]
    assert phone[0] == "+" and phone[3] == "(" and phone[-5] == "-"
    number = masker.transform("keep_format", INT, unique=False)(123456)
    assert isinstance(number, int) and len(str(number)) == 6


def test_hashed_binary_and_uuids_keep_their_shape() -> None:
    masker = Masker("k")
    data = masker.transform("hash", ColumnSchema("b", "binary"), unique=True)(b"\x00\x01secret")
    assert isinstance(data, bytes) and len(data) == 8 and data != b"\x00\x01secret"
    uid = "123e4567-e89b-12d3-a456-426614174000"
    masked = masker.transform("hash", ColumnSchema("u", "uuid"), unique=True)(uid)
    assert len(masked) == 36 and masked.count("-") == 4 and masked != uid


def test_fake_values_on_a_unique_column_stay_unique() -> None:
    email = Masker("k").transform("fake_email", TEXT, unique=True)
    masked = {email(f"user{i}@corp.example") for i in range(3000)}
    assert len(masked) == 3000
    assert all("@" in value for value in masked)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("1980-05-17", str),
        (dt.date(1980, 5, 17), dt.date),
        ("2024-01-02 03:04:05", str),
        (dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime),
    ],
)
def test_shifted_dates_keep_their_form(value: object, kind: type) -> None:
    shifted = Masker("k").transform("shift_days", ColumnSchema("d", "date"), unique=False)(value)
    assert type(shifted) is kind
    if isinstance(shifted, str):
        assert len(shifted) == len(str(value)) and shifted[4] == "-"
        assert (" " in shifted) == (" " in str(value))


CUSTOMERS = TableSchema(
    "customers",
    (ColumnSchema("id", "integer", False), ColumnSchema("email", "text", False)),
    ("id",),
    (),
    (IndexSchema(None, ("email",), unique=True),),
)
ORDERS = TableSchema(
    "orders",
    (ColumnSchema("id", "integer", False), ColumnSchema("customer_id", "bigint")),
    ("id",),
    (ForeignKeySchema(None, ("customer_id",), "customers", ("id",)),),
)
SCHEMAS = {"customers": CUSTOMERS, "orders": ORDERS}
EDGES = [("orders", ORDERS.foreign_keys[0])]


def test_a_masked_key_masks_the_columns_that_reference_it_the_same_way() -> None:
    rules = {"customers": [MaskRule("customers.id", "hash")]}
    masks, linked = resolve_masks(SCHEMAS, rules, EDGES)
    assert masks == {"customers": {"id": "hash"}, "orders": {"customer_id": "hash"}}
    assert linked == {("orders", "customer_id")}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            {"customers": [MaskRule("id", "hash")], "orders": [MaskRule("customer_id", "null")]},
            "mask: orders.customer_id and customers.id are linked by a foreign key but masked "
            "differently (hash, null)",
        ),
        ({"customers": [MaskRule("email", "null")]}, "customers.email: null cannot mask a column"),
        ({"customers": [MaskRule("id", "fake_email")]}, "fake_email keeps only columns of type"),
        ({"customers": [MaskRule("mail", "hash", strict=True)]}, "has no column 'mail'"),
    ],
)
def test_masks_that_cannot_hold_are_plan_errors(
    rules: dict[str, list[MaskRule]], message: str
) -> None:
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_masks(SCHEMAS, rules, EDGES)


def test_sensitive_patterns_name_unmasked_columns() -> None:
    copied = {"customers": ["id", "email", "ssn"], "orders": ["id", "email"]}
    masks = {"customers": {"email": "fake_email"}}
    assert unmasked_sensitive(["*.email", "customers.ssn"], copied, masks) == [
        "customers.ssn",
        "orders.email",
    ]


# -- end to end -----------------------------------------------------------------------------

SHOP = """
CREATE TABLE customers (
  id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT, phone TEXT, ssn TEXT,
  born DATE, notes TEXT
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), amount REAL
);
"""
SECRET_SEED = "correct horse battery staple"

MANIFEST = """\
version: 1
connections:
  prod:
    driver: sqlite
    database: prod.db
    sensitive: [customers.email, customers.name, customers.phone, customers.ssn, "*.notes"]
  dev: {driver: sqlite, database: TARGET, requires_masking: true}
migrations:
  masked:
    from: prod
    to: dev
    follow: parents
    mask_seed: ${env:SHOP_MASK_SEED}
    mask:
      customers.id: hash
      customers.email: fake_email
      customers.name: fake_name
      customers.phone: keep_format
      customers.ssn: hash
      customers.born: shift_days
      notes: "null"
    tables:
      orders: {where: {amount: {gt: 20}}}
"""


def customer(i: int) -> tuple[object, ...]:
    return (
        i,
        f"person{i}@real-mail.example",
        f"Realname Number{i}",
        f"+1 555 {1000 + i}",
        f"SSN-{100000 + i}",
        f"19{50 + i % 40}-0{1 + i % 9}-1{i % 9}",
        f"private note {i}",
    )


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHOP_MASK_SEED", SECRET_SEED)
    with sqlite3.connect(tmp_path / "prod.db") as db:
        db.executescript(SHOP)
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)", map(customer, range(1, 61))
        )
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [(100 + i, 1 + i % 50, float(i)) for i in range(1, 101)],
        )
    return tmp_path


def write(shop: Path, target: str = "dev.db") -> Path:
    manifest = shop / f"{target}.yaml"
    manifest.write_text(MANIFEST.replace("TARGET", target))
    return manifest


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(sql).fetchall())


def test_a_masked_subset_joins_hides_every_original_and_repeats_with_the_seed(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(shop)
    plan = run_cli(capsys, "plan", manifest, "--no-color")
    assert plan.code == 0, plan.text
    assert (
        "customers -> dev.customers: 50 rows (upsert, new table; parent of orders via "
        "orders.customer_id; masks id (hash), email (fake_email), name (fake_name), phone "
        "(keep_format), ssn (hash), born (shift_days), notes (null))" in plan.text
    )
    assert "masks customer_id (hash, like the key it joins)" in plan.text
    as_json = run_cli(capsys, "plan", manifest, "--format", "json")
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--no-color")
    assert applied.code == 0, applied.text
    assert "verified" in applied.text

    dev = shop / "dev.db"
    masker = Masker(SECRET_SEED)
    column = ColumnSchema("x", "text")
    source = {c[0]: c for c in map(customer, range(1, 61))}
    assert rows(dev, "SELECT id, amount FROM orders") == [
        (100 + i, float(i)) for i in range(21, 101)
    ]
    # Each order's masked customer_id is its customer's masked id, with the masked email.
    joined = rows(
        dev,
        "SELECT o.amount, c.email, c.name FROM orders o JOIN customers c ON c.id = o.customer_id",
    )
    hash_id = masker.transform("hash", INT, unique=True)
    email = masker.transform("fake_email", column, unique=True)
    name = masker.transform("fake_name", column, unique=False)
    assert joined == sorted(
        (float(i), email(source[1 + i % 50][1]), name(source[1 + i % 50][2]))
        for i in range(21, 101)
    )
    assert rows(dev, "SELECT id FROM customers") == sorted(
        (hash_id(c),) for c in {1 + i % 50 for i in range(21, 101)}
    )
    assert rows(dev, "SELECT DISTINCT notes FROM customers") == [(None,)]
    assert run_cli(capsys, "verify", manifest).code == 0

    originals = [value for c in source.values() for value in c[1:5]] + [
        c[6] for c in source.values()
    ]
    places = {
        "target": (shop / "dev.db").read_bytes().decode("latin-1"),
        "state": b"".join(p.read_bytes() for p in (shop / ".dsdb").iterdir()).decode("latin-1"),
        "plan": plan.text + as_json.text,
        "apply": applied.text,
    }
    for where, text in places.items():
        leaked = [value for value in originals if value in text]
        assert leaked == [], f"{where} holds {leaked[:3]}"
    assert SECRET_SEED not in places["state"] + places["plan"] + places["apply"]

    again = run_cli(capsys, "plan", manifest, "--detailed-exitcode")
    assert again.code == 0, again.text
    # Another run with the same seed, into another database, masks every value alike.
    other = write(shop, "dev2.db")
    assert run_cli(capsys, "apply", other, "--auto-approve").code == 0
    for table in ("customers", "orders"):
        assert rows(shop / "dev2.db", f"SELECT * FROM {table}") == rows(
            dev, f"SELECT * FROM {table}"
        )
    # Verification compares the masked columns through the masks: a changed one shows.
    with sqlite3.connect(dev) as db:
        db.execute(
            "UPDATE customers SET name = 'Someone Else' WHERE id = (SELECT min(id) FROM customers)"
        )
    assert run_cli(capsys, "verify", manifest).code == 1


def test_a_target_that_requires_masking_refuses_an_unmasked_sensitive_column(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(shop)
    manifest.write_text(manifest.read_text().replace("      customers.ssn: hash\n", ""))
    result = run_cli(capsys, "plan", manifest, "--no-color")
    assert result.code == 1
    assert (
        "migration.masked: connection 'dev' requires masking, and this migration copies "
        "customers.ssn unmasked ('prod' names them sensitive): mask them under mask:"
    ) in result.text


def test_mask_without_a_seed_is_a_manifest_error(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(shop)
    manifest.write_text(manifest.read_text().replace("    mask_seed: ${env:SHOP_MASK_SEED}\n", ""))
    result = run_cli(capsys, "validate", manifest)
    assert result.code == 1
    assert "`mask` needs `mask_seed`" in result.text


def test_plan_json_lists_no_seed(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "plan", write(shop), "--format", "json")
    document = json.loads(result.out)
    assert SECRET_SEED not in json.dumps(document)


def test_mirror_deletes_by_masked_key(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(shop)
    manifest.write_text(
        manifest.read_text().replace(
            "    follow: parents\n", "    follow: parents\n    mode: mirror\n"
        )
    )
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    with sqlite3.connect(shop / "prod.db") as db:
        db.execute("DELETE FROM orders WHERE id = 150")
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
    assert applied.code == 0, applied.text
    assert rows(shop / "dev.db", "SELECT id FROM orders") == [
        (100 + i,) for i in range(21, 101) if i != 50
    ]
    assert run_cli(capsys, "plan", manifest, "--detailed-exitcode").code == 0


@pytest.mark.parametrize("server", ["postgres_db", "mariadb_db"])
def test_masked_values_land_in_the_servers_with_their_types(
    shop: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    server: str,
) -> None:
    target: ServerDatabase = request.getfixturevalue(server)
    manifest = write(shop)
    text = manifest.read_text().replace(
        "{driver: sqlite, database: dev.db, requires_masking: true}",
        f'{{url: "{target.url_string}", requires_masking: true}}',
    )
    manifest.write_text(text)
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--no-color")
    assert applied.code == 0, applied.text
    engine = target.engine()
    try:
        with engine.connect() as conn:
            joined = conn.execute(
                sa.text("SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id")
            ).scalar_one()
            born = conn.execute(sa.text("SELECT born FROM customers")).scalars().all()
    finally:
        engine.dispose()
    assert joined == 80
    assert all(isinstance(value, dt.date) for value in born)
    assert run_cli(capsys, "verify", manifest).code == 0
