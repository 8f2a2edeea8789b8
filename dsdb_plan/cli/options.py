"""Options shared by the commands that read a manifest."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dsdb_plan.errors import DsdbError, ManifestError
from dsdb_plan.interpolate import FileValue
from dsdb_plan.manifest import DEFAULT_MANIFEST, LoadedManifest, check_structure, load_manifest
from dsdb_plan.yamlsource import load_yaml

if TYPE_CHECKING:
    from dsdb_plan.project import Project
    from dsdb_plan.state import StateSnapshot, StateStore

F = TypeVar("F", bound=Callable[..., Any])


def manifest_argument(function: F) -> F:
    return click.argument(
        "manifest",
        required=False,
        default=DEFAULT_MANIFEST,
        type=click.Path(path_type=Path, dir_okay=False),
    )(function)


def variable_options(function: F) -> F:
    function = click.option(
        "--var-file",
        multiple=True,
        type=click.Path(path_type=Path, dir_okay=False),
        help="YAML file of NAME: VALUE variables (repeatable).",
    )(function)
    return click.option(
        "--var", multiple=True, metavar="NAME=VALUE", help="Set a variable (repeatable)."
    )(function)


def parse_variables(pairs: tuple[str, ...], files: tuple[Path, ...]) -> dict[str, str]:
    """Variables from --var-file files, then --var pairs (later ones win)."""
    values: dict[str, str] = {}
    for file in files:
        values.update(_var_file_values(file))
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise DsdbError(f"--var expects NAME=VALUE, got '{name}'")
        values[name.strip()] = value
    return values


def _var_file_values(file: Path) -> dict[str, str]:
    """The NAME: VALUE pairs of a --var-file, each remembering its line for messages."""
    try:
        source = load_yaml(file.read_bytes(), str(file))
    except OSError as error:
        raise DsdbError(f"cannot read variable file {file}: {error.strerror}") from None
    if not isinstance(source.data, dict):
        problem = source.problem((), "a variable file is a mapping of NAME: VALUE")
        raise ManifestError([problem], "variable file")
    problems = list(source.problems)
    values: dict[str, str] = {}
    for name, value in source.data.items():
        if isinstance(value, list | dict):
            kind = "list" if isinstance(value, list) else "mapping"
            problems.append(source.problem((name,), f"a {kind}; a variable's value is a scalar"))
            continue
        line, column = source.locate((name,)) or (1, 1)
        values[str(name)] = FileValue("" if value is None else str(value), str(file), line, column)
    if problems:
        raise ManifestError(problems, "variable file")
    return values


def open_project(manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]) -> Project:
    """The manifest opened for work with the variables given; use it as a context manager."""
    from dsdb_plan.project import Project  # what plan and apply need, loaded by them alone

    return Project.open(manifest, variables=parse_variables(var, var_file))


@contextlib.contextmanager
def open_state_of(
    manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> Iterator[tuple[LoadedManifest, StateStore]]:
    """The manifest and its state store, for the commands that read or unlock state alone:
    they need only the secrets of `settings` (a state URL's password), not those of the
    connections or masks they never use."""
    from dsdb_plan.state import open_state

    loaded, unset = check_structure(manifest, variables=parse_variables(var, var_file))
    needed = [problem for problem in unset if problem.path[:1] == ("settings",)]
    if needed:
        raise ManifestError(needed)
    store = open_state(loaded.manifest.settings.state, loaded.base_dir)
    try:
        yield loaded, store
    finally:
        store.close()


def read_state(manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]) -> StateSnapshot:
    """The state recorded for the manifest, as of now."""
    with open_state_of(manifest, var, var_file) as (_, store):
        return store.read()


def load_from_options(
    manifest: Path, var: tuple[str, ...], var_file: tuple[Path, ...]
) -> LoadedManifest:
    return load_manifest(manifest, variables=parse_variables(var, var_file))
