"""Shared fixtures: scratch server databases and manifest helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dsdb_plan import redact
from tests.servers import ServerDatabase, server_database


@pytest.fixture(autouse=True)
def _page_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite page hashes cached in a folder of each test's own, never the user's."""
    monkeypatch.setenv("DSDB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _no_secrets_from_earlier_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test masks only the secrets it met itself: one registered by an earlier test
    would hide a leak of the same value here."""
    monkeypatch.setattr(redact, "_secrets", set())


@pytest.fixture(scope="session")
def _postgres_session() -> Iterator[ServerDatabase]:
    yield from server_database("postgresql")


@pytest.fixture(scope="session")
def _mariadb_session() -> Iterator[ServerDatabase]:
    yield from server_database("mariadb")


@pytest.fixture
def postgres_db(_postgres_session: ServerDatabase) -> ServerDatabase:
    """An empty PostgreSQL database (the session's, wiped for this test)."""
    _postgres_session.reset()
    return _postgres_session


@pytest.fixture
def mariadb_db(_mariadb_session: ServerDatabase) -> ServerDatabase:
    """An empty MariaDB database (the session's, wiped for this test)."""
    _mariadb_session.reset()
    return _mariadb_session


@pytest.fixture
def write_manifest(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write manifest text to a file in the test's folder and return its path."""

    def write(text: str, name: str = "dsdb.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
