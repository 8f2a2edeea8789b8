"""The manifest, as pydantic models. `schemas/manifest.schema.json` is generated from here.

Every model is frozen and forbids unknown fields, and every field says what it means: the
descriptions are what editors show while a user writes a manifest.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from dsdb_plan.connection import Connection
from dsdb_plan.redact import register_secret
from dsdb_plan.references import check_declared

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=128)]
RESOURCE_KINDS = ("backup", "migration", "restore", "teardown")
ADDRESS_PATTERN = r"^(backup|migration|restore|teardown)\.[A-Za-z_][A-Za-z0-9_-]*$"
Address = Annotated[str, StringConstraints(pattern=ADDRESS_PATTERN)]
Scalar = str | int | float | bool | Decimal | dt.date | dt.datetime | None


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Settings(_Model):
    """Where dsdb keeps its records and files."""

    state: str = Field(
        default=".dsdb/state.db",
        description="The state store: a SQLite file path (relative to the manifest) or a "
        "postgresql:// URL shared by a team.",
    )
    backup_root: str = Field(
        default="backups/",
        description="Folder that backups are written to (relative to the manifest).",
    )
    lock_timeout: float = Field(
        default=0,
        ge=0,
        description="Seconds to wait for another run's state lock before giving up.",
    )


class Variable(_Model):
    """An input to the manifest, referenced as ${var:NAME}."""

    type: Literal["string", "integer", "number", "boolean"] = Field(
        default="string", description="The value's type."
    )
    default: str | int | float | bool | None = Field(
        default=None,
        description="Value used when none is given; without it the variable is required.",
    )
    description: str | None = Field(default=None, description="What the variable is for.")
    sensitive: bool = Field(
        default=False, description="A secret: its value is masked in every output."
    )


class Operators(_Model):
    """Comparison operators for one column of a structured filter; all given must hold."""

    eq: Scalar = Field(default=None, description="Equal to.")
    ne: Scalar = Field(default=None, description="Not equal to.")
    gt: Scalar = Field(default=None, description="Greater than.")
    gte: Scalar = Field(default=None, description="Greater than or equal to.")
    lt: Scalar = Field(default=None, description="Less than.")
    lte: Scalar = Field(default=None, description="Less than or equal to.")
    in_: list[Scalar] | None = Field(default=None, alias="in", description="One of these values.")
    not_in: list[Scalar] | None = Field(default=None, description="None of these values.")
    like: str | None = Field(default=None, description="SQL LIKE pattern.")
    is_null: bool | None = Field(default=None, description="true: IS NULL; false: IS NOT NULL.")


Condition = Annotated[
    Scalar | list[Scalar] | Operators,
    Field(description="A value (equality), a list (one of), or operators."),
]


class Incremental(_Model):
    """Copy only rows whose cursor column advanced since the last apply."""

    cursor: str = Field(description="A column that grows with every insert or update.")


class Sample(_Model):
    """A deterministic share of a table's rows, chosen by a hash of the key and the seed."""

    percent: float | None = Field(
        default=None, gt=0, le=100, description="Keep about this percentage of the rows."
    )
    rows: int | None = Field(default=None, ge=1, description="Keep this many rows.")
    seed: int | str = Field(
        default=0, description="Another seed draws another sample; the same seed, the same rows."
    )

    @model_validator(mode="after")
    def _one_size(self) -> Sample:
        if (self.percent is None) == (self.rows is None):
            raise ValueError("give exactly one of `percent` or `rows`")
        return self


#: The transforms a column can be masked with (see `dsdb_plan/migrate/mask.py`).
MaskName = Literal[
    "hash",
    "null",
    "keep_format",
    "shift_days",
    "fake_email",
    "fake_name",
    "fake_first_name",
    "fake_last_name",
    "fake_phone",
    "fake_address",
    "fake_company",
    "fake_text",
]


class MigrationTable(_Model):
    """Per-table options of a migration."""

    columns: list[str] | None = Field(
        default=None, description="Copy only these columns (default: all)."
    )
    where: dict[str, Condition] | None = Field(
        default=None,
        description="Structured row filter: {column: value | [values] | {gt: 1, ...}}. "
        "Values are bound, never spliced into SQL.",
    )
    sql_where: str | None = Field(
        default=None, description="Raw SQL condition, an escape hatch for what `where` cannot say."
    )
    rename_to: str | None = Field(default=None, description="Name of the table in the target.")
    key: list[str] | None = Field(
        default=None, description="Columns that identify a row (default: the primary key)."
    )
    mode: Literal["append", "upsert", "replace", "mirror"] | None = Field(
        default=None, description="Overrides the migration's mode for this table."
    )
    incremental: Incremental | None = Field(
        default=None, description="Copy only rows whose cursor advanced."
    )
    sample: Sample | None = Field(
        default=None,
        description="Copy a deterministic sample of the rows `where` selects: {percent: 10} or "
        "{rows: 5000}, with an optional seed. The same rows on every apply.",
    )
    mask: dict[str, MaskName] | None = Field(
        default=None,
        description="Columns to mask and how: {email: fake_email, ssn: hash, notes: null}. "
        "The same value masks the same way in every table, so masked keys still join.",
    )


class _Resource(_Model):
    depends_on: list[Address] = Field(
        default_factory=list,
        description="Addresses (kind.name) that must be applied before this one. A resource "
        "that reads a connection another one writes must name which comes first; one that "
        "reads it after is planned from what the writer leaves there.",
    )
    description: str | None = Field(default=None, description="Free text for humans.")


class Backup(_Resource):
    """A verified backup of a connection's current data; the newest `keep` are kept."""

    connection: Name = Field(description="The connection to back up.")
    tables: list[str] | None = Field(default=None, description="Only these tables (default: all).")
    keep: int = Field(
        default=7, ge=1, description="How many backups to keep; older ones are pruned."
    )


class Migration(_Resource):
    """The target holds this subset of the source, kept in step on every apply."""

    source: Name = Field(alias="from", description="The connection to copy from.")
    target: Name = Field(alias="to", description="The connection to copy to.")
    mode: Literal["append", "upsert", "replace", "mirror"] = Field(
        default="upsert",
        description="append: insert new rows only; upsert: insert or update by key; "
        "replace: load a staging table and swap it in; mirror: upsert and delete rows "
        "no longer in the source subset.",
    )
    follow: Literal["none", "parents", "children"] = Field(
        default="none",
        description="parents: also copy the rows the selected rows reference, so no foreign "
        "key dangles; children: also copy the rows that reference them.",
    )
    tables: list[str] | dict[str, MigrationTable | None] | None = Field(
        default=None,
        description="Tables to copy: a list of names, or a map of name to options "
        "(default: all tables).",
    )
    schema_changes: Literal["evolve", "strict"] = Field(
        default="strict",
        alias="schema",
        description="evolve: add columns that appeared in the source; strict: refuse.",
    )
    batch_size: int = Field(
        default=10_000,
        ge=1,
        description="Rows per committed batch (and checkpoint). SQLite to SQLite, where no "
        "row passes through Python, batches start at this size and double while each commits "
        "in under half a second; SQLite to PostgreSQL in whole columns, the batches after the "
        "first are committed (and checkpointed) together every two seconds.",
    )
    on_dangling: Literal["refuse", "skip", "keep"] = Field(
        default="refuse",
        description="Source rows whose foreign key points at no copied row (the source does "
        "not enforce it, or the subset leaves the row out): refuse to plan, naming table, "
        "key and count; skip those rows (and the rows pointing at them); or keep them and "
        "leave that foreign key out of the tables dsdb creates.",
    )
    references: dict[str, str] | None = Field(
        default=None,
        description="Foreign keys the source does not declare, for `follow` and the target: "
        "{child_table.column: parent_table.column}, or table.(a, b) for composite keys "
        "(added to the source connection's `references`).",
    )
    mask: dict[str, MaskName] | None = Field(
        default=None,
        description="Columns to mask in every table copied, followed ones included: "
        "{customers.email: fake_email, phone: fake_phone}; a bare column name (or a `*` "
        "pattern) applies to every table that has it. A table's own `mask` comes first.",
    )
    mask_seed: SecretStr | None = Field(
        default=None,
        description="The secret that masked values derive from, e.g. '${env:DSDB_MASK_SEED}': "
        "the same seed masks a value the same way on every run. Needed by `mask`.",
    )

    _references = field_validator("references")(check_declared)

    @field_validator("mask_seed")
    @classmethod
    def _seed_is_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            register_secret(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _masks_have_a_seed(self) -> Migration:
        masked = bool(self.mask) or any(
            table.mask for table in (self.table_options() or {}).values()
        )
        if masked and self.mask_seed is None:
            raise ValueError("`mask` needs `mask_seed` (a secret, e.g. '${env:DSDB_MASK_SEED}')")
        return self

    def table_options(self) -> dict[str, MigrationTable] | None:
        """The tables as a name -> options map, or None for all tables."""
        if self.tables is None:
            return None
        if isinstance(self.tables, list):
            return {name: MigrationTable() for name in self.tables}
        return {name: options or MigrationTable() for name, options in self.tables.items()}


class Restore(_Resource):
    """A connection holds the data of a backup."""

    backup: Name | None = Field(
        default=None, description="A backup resource: its latest verified backup is restored."
    )
    backup_id: str | None = Field(
        default=None, description="A specific backup of that resource (see `dsdb backups list`)."
    )
    path: str | None = Field(
        default=None,
        description=(
            "A backup folder on disk (relative to the manifest), instead of a backup resource."
        ),
    )
    to: Name = Field(description="The connection to restore into.")
    tables: list[str] | None = Field(default=None, description="Only these tables (default: all).")
    replace_existing: bool = Field(
        default=False,
        description="Allow replacing target tables that already hold data (a destructive action).",
    )
    on_dangling: Literal["refuse", "skip", "keep"] = Field(
        default="refuse",
        description="Backed-up rows whose foreign key points at no row of the backup (its "
        "source did not enforce the key): refuse to plan, naming key and count; skip those "
        "rows (and the rows pointing at them); or keep them and leave that foreign key out "
        "of the target.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Restore:
        if (self.backup is None) == (self.path is None):
            raise ValueError("give exactly one of `backup` or `path`")
        if self.backup_id is not None and self.backup is None:
            raise ValueError("`backup_id` needs `backup`")
        return self


class Teardown(_Resource):
    """These tables, or this whole database, are gone."""

    connection: Name = Field(description="The connection to tear down.")
    tables: list[str] | Literal["all"] = Field(
        default="all", description="Tables to drop, or 'all'."
    )
    drop_database: bool = Field(
        default=False,
        description="Drop the whole database (delete the SQLite file; DROP DATABASE on a server).",
    )
    final_backup: bool = Field(default=True, description="Take a backup before dropping anything.")


class Moved(_Model):
    """A resource that was renamed: its state follows it, nothing is re-run or destroyed."""

    from_: Address = Field(alias="from", description="The old address.")
    to: Address = Field(description="The new address.")


class Manifest(_Model):
    """A dsdb manifest: connections and the data movements wanted between them."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"$id": "https://dsdb.dev/schemas/manifest.schema.json"},
    )

    version: Literal[1] = Field(description="Manifest format version.")
    settings: Settings = Field(
        default_factory=Settings, description="Where state and backups live."
    )
    variables: dict[Name, Variable] = Field(
        default_factory=dict, description="Inputs, referenced as ${var:NAME}."
    )
    connections: dict[Name, Connection] = Field(
        default_factory=dict, description="Named databases."
    )
    backups: dict[Name, Backup] = Field(default_factory=dict, description="Backups to keep.")
    migrations: dict[Name, Migration] = Field(
        default_factory=dict, description="Data to copy between connections."
    )
    restores: dict[Name, Restore] = Field(
        default_factory=dict, description="Backups to restore into connections."
    )
    teardowns: dict[Name, Teardown] = Field(
        default_factory=dict, description="Tables or databases to remove."
    )
    moved: list[Moved] = Field(
        default_factory=list, description="Renamed resources, so their state follows them."
    )

    def resources(self) -> dict[str, _Resource]:
        """Every declared resource by address, in a stable order."""
        sections: dict[str, dict[str, Any]] = {
            "backup": self.backups,
            "migration": self.migrations,
            "restore": self.restores,
            "teardown": self.teardowns,
        }
        return {
            f"{kind}.{name}": spec
            for kind, specs in sections.items()
            for name, spec in sorted(specs.items())
        }
