"""restore: the plan's decision from the spec, its record and what the target holds,
without a database."""

from __future__ import annotations

from typing import Any

import pytest

from dsdb_plan.errors import PlanError
from dsdb_plan.kinds.base import make_record
from dsdb_plan.kinds.restore import RestoreObservation, decide
from dsdb_plan.models import Restore
from dsdb_plan.payloads import Dangling, RestoreBackup, Unchanged
from dsdb_plan.plan import ActionType

ADDRESS = "restore.into-scratch"
SPEC = Restore(backup="nightly", to="scratch")
DOCUMENT: dict[str, Any] = {"backup": "nightly", "to": "scratch"}
SOURCE = {"id": "b2", "path": "backups/nightly/b2", "label": "backup b2", "tables": ["a"]}


def _seen(**changes: Any) -> RestoreObservation:
    return RestoreObservation(
        **{"source": SOURCE, "writes": ("a",), "foreign": {}, "dropped": (), **changes}
    )


def _record(backup_id: str = "b2", document: dict[str, Any] = DOCUMENT):  # type: ignore[no-untyped-def]
    fingerprints = {"backup_id": backup_id, "written": {"tables": {}}}
    return make_record(ADDRESS, "restore", document, fingerprints=fingerprints)


def test_a_first_restore_names_the_backup_and_the_tables_it_writes() -> None:
    action = decide(ADDRESS, SPEC, DOCUMENT, None, _seen(), protected=False)
    assert action.type is ActionType.CREATE and not action.destructive
    assert action.reasons == ("restore backup b2 into scratch",)
    assert action.payload == RestoreBackup(
        DOCUMENT,
        connection="scratch",
        backup_id="b2",
        path="backups/nightly/b2",
        backup_address="backup.nightly",
        tables=None,
        writes=("a",),
    )


def test_data_in_the_way_is_refused_unless_replacing_and_then_destructive() -> None:
    seen = _seen(foreign={"a": "replaces table a in scratch (3 rows)"})
    with pytest.raises(PlanError, match=r"scratch already holds tables with data \(a\)"):
        decide(ADDRESS, SPEC, DOCUMENT, None, seen, protected=False)
    replacing = Restore(backup="nightly", to="scratch", replace_existing=True)
    action = decide(ADDRESS, replacing, DOCUMENT, None, seen, protected=False)
    assert action.destructive and action.reasons[-1] == "replaces table a in scratch (3 rows)"
    assert isinstance(action.payload, RestoreBackup) and action.payload.overwrites == ("a",)
    with pytest.raises(PlanError, match="protected"):
        decide(ADDRESS, replacing, DOCUMENT, None, seen, protected=True)


@pytest.mark.parametrize(
    ("record", "seen", "type_", "reason"),
    [
        (_record(), _seen(), ActionType.NOOP, "scratch holds backup b2"),
        (_record("b1"), _seen(), ActionType.RESYNC, "backup b2 replaces the restored backup b1"),
        (
            _record(),
            _seen(dropped=("target table a removed outside dsdb",)),
            ActionType.RESYNC,
            "target table a removed outside dsdb",
        ),
        (
            _record(document={**DOCUMENT, "tables": ["a"]}),
            _seen(),
            ActionType.UPDATE,
            "tables: removed (was [a])",
        ),
    ],
)
def test_what_changed_since_the_last_restore_decides_the_action(
    record: Any, seen: RestoreObservation, type_: ActionType, reason: str
) -> None:
    action = decide(ADDRESS, SPEC, DOCUMENT, record, seen, protected=False)
    assert action.type is type_ and reason in action.reasons
    assert isinstance(action.payload, Unchanged) == (type_ is ActionType.NOOP)


def test_a_resumed_restore_says_how_far_it_got() -> None:
    action = decide(ADDRESS, SPEC, DOCUMENT, None, _seen(resumed=2), protected=False)
    assert action.reasons[1] == "resuming an interrupted restore: 2 tables already done"


DANGLING = Dangling("a", ("b_id",), "b", ("id",), 2, ("7",))


def test_dangling_references_are_refused_by_default_naming_key_count_and_options() -> None:
    seen = _seen(dangling=(DANGLING,))
    with pytest.raises(PlanError) as refused:
        decide(ADDRESS, SPEC, DOCUMENT, None, seen, protected=False)
    message = str(refused.value)
    assert message.startswith(f"{ADDRESS}: the backup holds rows whose foreign key points")
    assert "a.b_id → b.id: 2 rows point at no copied b row (e.g. 7)" in message
    assert "`on_dangling: skip`" in message and "`on_dangling: keep`" in message


@pytest.mark.parametrize(
    ("policy", "note"),
    [
        (
            "skip",
            "skips a.b_id → b.id: 2 rows point at no copied b row (e.g. 7), and any rows "
            "pointing at those",
        ),
        (
            "keep",
            "keeps a.b_id → b.id: 2 rows point at no copied b row (e.g. 7); that foreign "
            "key is left out of the target",
        ),
    ],
)
def test_skip_and_keep_say_what_they_do_and_carry_the_count_to_the_apply(
    policy: str, note: str
) -> None:
    spec = Restore(backup="nightly", to="scratch", on_dangling=policy)  # type: ignore[arg-type]
    action = decide(ADDRESS, spec, DOCUMENT, None, _seen(dangling=(DANGLING,)), protected=False)
    assert action.reasons == ("restore backup b2 into scratch", note)
    assert isinstance(action.payload, RestoreBackup)
    assert action.payload.dangling == (DANGLING,)


def test_an_unchanged_restore_plans_nothing_whatever_its_backup_holds() -> None:
    record = _record()
    action = decide(ADDRESS, SPEC, DOCUMENT, record, _seen(dangling=(DANGLING,)), protected=False)
    assert action.type is ActionType.NOOP
