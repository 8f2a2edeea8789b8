"""Payloads: every type reads back from its JSON as it was written; an unknown one is named."""

from __future__ import annotations

import json

import pytest

from dsdb_plan.errors import DsdbError
from dsdb_plan.payloads import (
    CopyTables,
    DropTables,
    Forget,
    Payload,
    PruneBackups,
    RecordSettings,
    RestoreBackup,
    TableCopy,
    TakeBackup,
    Unchanged,
    payload_from_dict,
)

SPEC = {"connection": "local", "links": {"local": "sqlite:///data/local.db"}}

EVERY_PAYLOAD: list[Payload] = [
    Unchanged(SPEC),
    RecordSettings(SPEC),
    Forget({}),
    TakeBackup(
        SPEC, connection="local", tables=("a", "b"), rows={"a": 1, "b": 2}, fingerprint={"t": 1}
    ),
    PruneBackups(SPEC, ids=("20261101T000000Z-aaaaaa",)),
    PruneBackups({}, ids=(), forget=True),
    DropTables(SPEC, connection="scratch", tables=("a",), rows={"a": 3}, final_backup="b/x"),
    DropTables(SPEC, connection="scratch", tables=(), rows={}, drop_database=True),
    RestoreBackup(
        SPEC,
        connection="scratch",
        backup_id=None,
        path=None,
        backup_address="backup.nightly",
        tables=None,
    ),
    RestoreBackup(
        SPEC,
        connection="scratch",
        backup_id="20261101T000000Z-aaaaaa",
        path="backups/nightly/20261101T000000Z-aaaaaa",
        backup_address=None,
        tables=("flights",),
        overwrites=("flights",),
    ),
    CopyTables(
        SPEC,
        source="local",
        target="prod",
        tables=(
            TableCopy("airlines", "airlines", "upsert", 3),
            TableCopy("flights", "winter", "mirror", 1_200, estimated=True, held=40),
            TableCopy("events", "events", "append", None),
        ),
        source_fingerprint={"tables": {}},
    ),
]


@pytest.mark.parametrize("payload", EVERY_PAYLOAD, ids=lambda p: p.TAG)
def test_every_payload_reads_back_from_json_as_written(payload: Payload) -> None:
    data = json.loads(json.dumps(payload.to_dict()))
    assert data["type"] == payload.TAG
    assert payload_from_dict(data) == payload


def test_an_unknown_payload_type_is_named() -> None:
    with pytest.raises(DsdbError, match="unknown action payload type 'explode'"):
        payload_from_dict({"type": "explode", "spec": {}})
