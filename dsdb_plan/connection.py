"""The connection model, shared by the manifest and `ConnectionManager`.

A connection is a `driver` plus a link (`database` path or host/port/database/user/password),
or a whole SQLAlchemy `url`. Both forms normalise to one SQLAlchemy URL; the password is a
secret everywhere it appears.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dsdb_plan.engines import (
    CANONICAL_DRIVERS,
    DRIVERS,
    UnknownEngineError,
    engine_for,
    registration_for,
)
from dsdb_plan.errors import did_you_mean
from dsdb_plan.redact import MASK, register_secret
from dsdb_plan.references import check_declared

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import sqlalchemy as sa
    from sqlalchemy.engine import URL

# Query options that carry a password: libpq takes `password` and `sslpassword`
# (postgresql://u@h/db?password=...), PyMySQL `password` and its older `passwd`.
_SECRET_OPTIONS = frozenset({"password", "passwd", "sslpassword"})


def register_url_secrets(url: URL) -> None:
    """Register the password of `url`, in its userinfo or its query, as a secret."""
    register_secret(url.password if isinstance(url.password, str) else None)
    _register_secret_options(url.query)


def display_url(url: URL) -> str:
    """`url` safe to print: the password masked, also where the query carries it."""
    return url.set(query=_mask_secret_options(url.query)).render_as_string(hide_password=True)


def _register_secret_options(query: Mapping[str, str | Sequence[str]]) -> None:
    for name, value in query.items():
        if name.lower() in _SECRET_OPTIONS:
            for one in (value,) if isinstance(value, str) else value:
                register_secret(one)


def _mask_secret_options(query: Mapping[str, Any]) -> dict[str, Any]:
    return {name: MASK if name.lower() in _SECRET_OPTIONS else v for name, v in query.items()}


def _sqlalchemy_drivername(driver: str) -> str:
    """Map a user's driver name to an installed SQLAlchemy dialect, or fail with a hint."""
    lowered = driver.lower()
    if lowered in DRIVERS:
        return DRIVERS[lowered]
    name, _, dbapi = lowered.partition("+")
    if name in DRIVERS and dbapi:
        name = DRIVERS[name].split("+")[0]
    candidate = f"{name}+{dbapi}" if dbapi else name
    from sqlalchemy.dialects import registry as dialect_registry

    try:
        dialect_registry.load(candidate.replace("+", "."))
    except Exception:
        raise PydanticCustomError(
            "unknown_driver",
            "unknown driver '{driver}'{hint}",
            {"driver": driver, "hint": did_you_mean(lowered, CANONICAL_DRIVERS)},
        ) from None
    try:
        registration_for(name)
    except UnknownEngineError:
        # An installed dialect dsdb has no engine for: refused here rather than moved with
        # another engine's rules.
        raise PydanticCustomError(
            "unknown_engine",
            "dsdb has no rules for the '{name}' database engine (it knows {known})",
            {"name": name, "known": ", ".join(CANONICAL_DRIVERS)},
        ) from None
    return candidate


def _dialect_of(driver: str) -> str:
    """The SQLAlchemy dialect a user's driver name means (`postgres` → `postgresql`)."""
    return _sqlalchemy_drivername(driver).partition("+")[0]


def _embedded(backend: str) -> bool:
    """Whether a dialect's databases are files (SQLite, DuckDB), not databases on a server."""
    return registration_for(backend).embedded


def _resolve_sqlite_path(path: str, base_dir: Path) -> str:
    if path in ("", ":memory:") or path.startswith("file:"):
        return path
    resolved = Path(os.path.expanduser(path))
    if not resolved.is_absolute():
        resolved = base_dir / resolved
    return str(resolved.resolve())


class Connection(BaseModel):
    """A named database: a driver and a link, or a whole SQLAlchemy URL."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    driver: str | None = Field(
        default=None,
        description="Database kind: sqlite, duckdb, postgresql (or postgres), mysql or mariadb, "
        "optionally with another installed DBAPI such as 'postgresql+psycopg2'. Not needed "
        "with `url`.",
    )
    url: str | None = Field(
        default=None,
        repr=False,
        description="A whole SQLAlchemy URL instead of the link fields, e.g. "
        "'postgresql://user:${env:PGPASSWORD}@host/db'. Its password is a secret.",
    )
    database: str | None = Field(
        default=None,
        description="The database name, or for SQLite and DuckDB the file path (relative paths "
        "resolve against the manifest's folder).",
    )
    host: str | None = Field(default=None, description="Server host name or address.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Server port.")
    user: str | None = Field(default=None, description="User name to log in as.")
    password: SecretStr | None = Field(
        default=None,
        description="Password; use '${env:NAME}' rather than writing it in the manifest. "
        "Never shown in output, state or logs.",
    )
    query: dict[str, str] = Field(
        default_factory=dict,
        description="Extra driver options passed in the URL query, e.g. {sslmode: require}.",
    )
    protect: bool = Field(
        default=False,
        description="Refuse any destructive action (teardown, replace, prune) on this database.",
    )
    create_database: bool = Field(
        default=False,
        description="Create the database when it does not exist: the plan says so and apply "
        "runs CREATE DATABASE (PostgreSQL, MariaDB/MySQL; a SQLite or DuckDB file is always "
        "created).",
    )
    references: dict[str, str] | None = Field(
        default=None,
        description="Foreign keys the database does not declare, for `follow` and the target: "
        "{child_table.column: parent_table.column}, or table.(a, b) for composite keys.",
    )
    sensitive: list[str] | None = Field(
        default=None,
        description="Columns holding personal or secret data, as table.column (`*` for any "
        "table): a copy into a connection with `requires_masking` must mask them.",
    )
    requires_masking: bool = Field(
        default=False,
        description="Refuse any migration into this database that copies a column its source "
        "names `sensitive` without masking it.",
    )
    description: str | None = Field(default=None, description="Free text for humans.")

    _references = field_validator("references")(check_declared)

    @field_validator("driver", "database", "url", "host", "user", mode="before")
    @classmethod
    def _strings_only(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise PydanticCustomError(
                "link_type",
                "must be a string, not {type}",
                {"type": type(value).__name__},
            )
        return value

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        if value is not None:
            _sqlalchemy_drivername(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _require_driver_and_link(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("url") or set(data) - set(cls.model_fields):
            return data  # an unknown field (a misspelt `driver`?) says more than "missing"
        if not data.get("driver"):
            raise PydanticCustomError("missing_driver", "Connection requires a driver.")
        if not data.get("database"):
            raise PydanticCustomError(
                "missing_link", "Connection requires a link (a database name, path or url)."
            )
        return data

    @model_validator(mode="after")
    def _normalise(self, info: ValidationInfo) -> Connection:
        base_dir = Path((info.context or {}).get("base_dir") or Path.cwd())
        if self.url:
            from sqlalchemy.engine import make_url  # only a url needs SQLAlchemy to read it

            try:
                url = make_url(self.url)
            except Exception:
                raise PydanticCustomError(
                    "bad_url", "url is not a valid SQLAlchemy URL (dialect://user:pass@host/db)"
                ) from None
            register_url_secrets(url)
            if self.host or self.database or self.port or self.user or self.password:
                raise PydanticCustomError(
                    "url_and_link", "give either url or the link fields, not both"
                )
            url = url.set(drivername=_sqlalchemy_drivername(url.drivername))
            # Compared as resolved, so `driver: postgres` agrees with a postgresql:// url.
            if self.driver and _dialect_of(self.driver) != url.get_backend_name():
                raise PydanticCustomError(
                    "driver_url_mismatch", "driver and url name different databases"
                )
            if _embedded(url.get_backend_name()) and url.database:
                url = url.set(database=_resolve_sqlite_path(url.database, base_dir))
            object.__setattr__(self, "url", url.render_as_string(hide_password=False))
            return self
        assert self.driver is not None and self.database is not None
        drivername = _sqlalchemy_drivername(self.driver)
        if self.password is not None:
            register_secret(self.password.get_secret_value())
        _register_secret_options(self.query)
        if _embedded(drivername.partition("+")[0]):
            if self.host or self.port or self.user or self.password:
                raise PydanticCustomError(
                    "embedded_server_fields",
                    "{driver} takes only a database path, not host/port/user",
                    {"driver": self.driver},
                )
            object.__setattr__(self, "database", _resolve_sqlite_path(self.database, base_dir))
        return self

    @field_serializer("url")
    def _mask_url(self, url: str | None) -> str | None:
        return self.display() if url else None

    @model_serializer(mode="wrap")
    def _mask_query(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A wrap around the whole model, as a field serializer would stop `exclude_defaults`
        # from leaving out an empty `query`.
        data = handler(self)
        if isinstance(data, dict) and isinstance(data.get("query"), dict):
            data["query"] = _mask_secret_options(data["query"])
        return data

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, _mask_secret_options(value) if name == "query" else value
            if name == "driver" and self.url:
                yield "url", self.display()

    # -- derived views -------------------------------------------------------------------

    def sqlalchemy_url(self) -> URL:
        """The URL to connect with, password included: never print it."""
        from sqlalchemy.engine import URL, make_url

        if self.url:
            return make_url(self.url)
        assert self.driver is not None
        return URL.create(
            drivername=_sqlalchemy_drivername(self.driver),
            username=self.user,
            password=self.password.get_secret_value() if self.password else None,
            host=self.host,
            port=self.port,
            database=self.database,
            query=self.query,
        )

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect's name ('sqlite', 'postgresql', 'mysql', 'mariadb', ...)."""
        if self.driver and not self.url:
            return _dialect_of(self.driver)
        return self.sqlalchemy_url().get_backend_name()

    @property
    def is_sqlite_file(self) -> bool:
        """Whether the database is a file (SQLite's, not in memory)."""
        return _embedded(self.dialect) and self.link not in ("", ":memory:")

    @property
    def link(self) -> str:
        """The database this connection points at: a file's path or a database name."""
        if self.url:
            return self.sqlalchemy_url().database or ""
        return self.database or ""

    def link_key(self) -> tuple[str, ...]:
        """What makes two connections the same database, whatever way they are written."""
        if self.url:
            url = self.sqlalchemy_url()
            host, port = url.host, url.port
        else:
            host, port = self.host, self.port
        registration = registration_for(self.dialect)
        if registration.embedded:
            return (registration.module, self.link or ":memory:")
        host = (host or "localhost").lower()
        if host in ("localhost", "127.0.0.1", "::1"):
            host = "localhost"
        port = port or registration.default_port or 0
        return (registration.module, host, str(port), self.link)

    def display(self) -> str:
        """A URL safe to print: the password is masked, also where the query carries it."""
        return display_url(self.sqlalchemy_url())

    def create_engine(self, **kwargs: Any) -> sa.Engine:
        """A new SQLAlchemy engine for this connection."""
        import sqlalchemy as sa

        if self.is_sqlite_file:
            Path(self.link).parent.mkdir(parents=True, exist_ok=True)
        rules = engine_for(self.dialect)  # first: loading DuckDB's module registers its dialect
        engine = sa.create_engine(self.sqlalchemy_url(), **kwargs)
        rules.prepare_engine(engine)
        return engine
