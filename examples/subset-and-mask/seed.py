"""Create a production-like shop database to pull a masked, sampled subset from.

Like most databases written by pandas, CSV imports or hand-made scripts, it declares no
keys and no foreign keys: the manifest's `references:` says how its tables link.
Deterministic, so every run of the example starts from the same data.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from pathlib import Path

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]


def seed(path: Path, customers: int = 2_000, orders: int = 10_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    rng = random.Random(16)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE customers (
                id INTEGER, email TEXT, name TEXT, phone TEXT, ssn TEXT, born DATE, notes TEXT
            );
            CREATE TABLE products (sku TEXT, title TEXT, price REAL);
            CREATE TABLE orders (id INTEGER, customer_id INTEGER, ordered_on DATE, total REAL);
            CREATE TABLE order_items (order_id INTEGER, line INTEGER, sku TEXT, quantity INTEGER);
            """
        )
        people = []
        for i in range(1, customers + 1):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            people.append(
                (
                    i,
                    f"{first}.{last}.{i}@example.com".lower(),
                    f"{first} {last}",
                    f"+1 555 {rng.randrange(1000, 9999)} {rng.randrange(100, 999)}",
                    "-".join(str(rng.randrange(10**n, 10 ** (n + 1))) for n in (2, 1, 3)),
                    _day(rng, rng.randrange(1940, 2005)),
                    rng.choice([None, "prefers email", "VIP", "called support twice"]),
                )
            )
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)", people)
        products = [
            (f"SKU-{n:04d}", f"Product {n}", round(rng.uniform(2, 200), 2)) for n in range(1, 301)
        ]
        db.executemany("INSERT INTO products VALUES (?, ?, ?)", products)
        for order in range(1, orders + 1):
            items = [
                (order, line, rng.choice(products)[0], rng.randrange(1, 5))
                for line in range(1, rng.randrange(2, 5))
            ]
            db.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?)",
                (
                    order,
                    rng.randrange(1, customers + 1),
                    _day(rng, 2024),
                    round(rng.uniform(5, 500), 2),
                ),
            )
            db.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?)", items)


def _day(rng: random.Random, year: int) -> str:
    return f"{year}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"


if __name__ == "__main__":
    target = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "data" / "production.db"
    )
    seed(target)
    print(f"seeded {target}")
