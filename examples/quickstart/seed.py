"""Create the quickstart's local SQLite database: airlines, airports and flights.

Deterministic, so every run of the quickstart starts from the same data.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from pathlib import Path

AIRLINES = [
    ("UA", "United Air Lines Inc."),
    ("AA", "American Airlines Inc."),
    ("DL", "Delta Air Lines Inc."),
    ("B6", "JetBlue Airways"),
]
AIRPORTS = [
    ("JFK", "John F Kennedy Intl"),
    ("LGA", "La Guardia"),
    ("EWR", "Newark Liberty Intl"),
    ("ORD", "Chicago Ohare Intl"),
    ("SFO", "San Francisco Intl"),
    ("ATL", "Atlanta Intl"),
]


def seed(path: Path, flights: int = 5_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    rng = random.Random(2013)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE airlines (carrier TEXT PRIMARY KEY, name TEXT NOT NULL);
            CREATE TABLE airports (faa TEXT PRIMARY KEY, name TEXT NOT NULL);
            CREATE TABLE flights (
                id INTEGER PRIMARY KEY,
                month INTEGER NOT NULL,
                day INTEGER NOT NULL,
                carrier TEXT NOT NULL REFERENCES airlines(carrier),
                origin TEXT NOT NULL REFERENCES airports(faa),
                dest TEXT NOT NULL REFERENCES airports(faa),
                dep_delay REAL,
                distance INTEGER
            );
            CREATE INDEX flights_carrier_month ON flights (carrier, month);
            """
        )
        db.executemany("INSERT INTO airlines VALUES (?, ?)", AIRLINES)
        db.executemany("INSERT INTO airports VALUES (?, ?)", AIRPORTS)
        codes = [faa for faa, _ in AIRPORTS]
        db.executemany(
            "INSERT INTO flights VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    i,
                    rng.randint(1, 12),
                    rng.randint(1, 28),
                    rng.choice(AIRLINES)[0],
                    *rng.sample(codes, 2),
                    None if rng.random() < 0.03 else round(rng.gauss(12, 40), 1),
                    rng.randint(150, 2600),
                )
                for i in range(1, flights + 1)
            ),
        )


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "data/flights.db"
    seed(target)
    print(f"seeded {target}")
