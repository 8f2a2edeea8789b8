"""`${env:NAME}`, `${env:NAME:-default}` and `${var:NAME}` in any string of a manifest.

As in the shell, `${env:NAME:-default}` takes `default` when NAME is unset or empty (CI
passes a secret that is not configured as an empty string); `${env:NAME}` of an empty
variable is the empty string.

Interpolation runs on the loaded YAML data, before validation, so every field accepts it.
A string that is exactly one `${var:NAME}` takes the variable's typed value (a port can be
an integer variable); `$${` writes a literal `${`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from dsdb_plan.errors import Problem, did_you_mean
from dsdb_plan.redact import register_secret
from dsdb_plan.yamlsource import Path, Source

_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}")
_BODY = re.compile(r"^(?P<kind>env|var):(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$")
_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


class FileValue(str):
    """A variable's value read from a --var-file, remembering where it was written, so a
    problem with it points at that file's line rather than at the manifest."""

    file: str
    line: int
    column: int

    def __new__(cls, value: str, file: str, line: int, column: int) -> FileValue:
        made = super().__new__(cls, value)
        made.file, made.line, made.column = file, line, column
        return made


def _convert(value: Any, type_name: str) -> Any:
    wanted = _TYPES[type_name]
    if isinstance(value, wanted) and not (wanted is not bool and isinstance(value, bool)):
        return value
    if wanted is bool and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"expected a boolean, got '{value}'")
    if wanted is str:
        return str(value)
    try:
        return wanted(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected {type_name}, got '{value}'") from None


class _Interpolator:
    def __init__(
        self,
        source: Source,
        env: Mapping[str, str],
        variables: dict[str, Any],
        unset_env: list[Problem] | None = None,
    ) -> None:
        self.source = source
        self.env = env
        self.unset_env = unset_env
        self.variables = variables
        self.declared: set[str] = set()
        self.bad_values: dict[str, str] = {}  # variable -> the var file line its value is on
        self.problems: list[Problem] = []

    def walk(self, value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {key: self.walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.walk(item, (*path, i)) for i, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return self.substitute(value, path)
        return value

    def substitute(self, text: str, path: Path) -> Any:
        whole = _REFERENCE.fullmatch(text)
        if whole and whole.group("body") is not None:
            return self.resolve(whole.group("body"), path)

        def replace(match: re.Match[str]) -> str:
            if match.group("body") is None:
                return "${"
            return str(self.resolve(match.group("body"), path))

        return _REFERENCE.sub(replace, text)

    def resolve(self, body: str, path: Path) -> Any:
        """The value of one reference; on failure, records a problem and keeps the text."""
        parsed = _BODY.match(body)
        if not parsed:
            self.problems.append(
                self.source.problem(
                    path, f"cannot read '${{{body}}}': expected ${{env:NAME}} or ${{var:NAME}}"
                )
            )
            return f"${{{body}}}"
        kind, name, default = parsed.group("kind", "name", "default")
        if kind == "env":
            if default is not None:
                return self.env.get(name) or default
            if name in self.env:
                return self.env[name]
            unset = self.source.problem(path, f"environment variable {name} is not set")
            (self.problems if self.unset_env is None else self.unset_env).append(unset)
            return f"${{{body}}}"
        if name in self.variables:
            return self.variables[name]
        if name in self.declared:  # its missing or bad value is reported where it was given
            where = self.bad_values.get(name, f"variables.{name}")
            message = f"variable '{name}' has no value (see {where})"
        else:
            message = f"variable '{name}' is not declared"
        self.problems.append(self.source.problem(path, message))
        return f"${{{body}}}"


def _variable_values(
    interpolator: _Interpolator, declared: Any, overrides: Mapping[str, str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    declared = declared if isinstance(declared, dict) else {}
    for name in sorted(set(overrides) - set(declared)):
        given = overrides[name]
        if isinstance(given, FileValue):
            hint = did_you_mean(name, [str(n) for n in declared])
            interpolator.problems.append(
                Problem(
                    f"'{name}' is not a declared variable{hint}",
                    (),
                    given.file,
                    given.line,
                    given.column,
                )
            )
            continue
        interpolator.problems.append(
            interpolator.source.problem(("variables",), f"--var {name} is not a declared variable")
        )
    for name, spec in declared.items():
        spec = spec if isinstance(spec, dict) else {}
        path: Path = ("variables", name)
        type_name = spec.get("type", "string")
        if not isinstance(type_name, str) or type_name not in _TYPES:
            continue  # the model validation reports the bad type
        if name in overrides:
            raw: Any = overrides[name]
        elif spec.get("default") is not None:
            raw = interpolator.walk(spec["default"], (*path, "default"))
        else:
            interpolator.problems.append(
                interpolator.source.problem(
                    path, f"variable '{name}' is required: give --var {name}=VALUE"
                )
            )
            continue
        try:
            values[name] = _convert(raw, type_name)
        except ValueError as error:
            if isinstance(raw, FileValue):
                where = (raw.file, raw.line, raw.column)
                interpolator.problems.append(Problem(str(error), (name,), *where))
                interpolator.bad_values[name] = f"{raw.file}:{raw.line}"
            else:
                interpolator.problems.append(interpolator.source.problem(path, str(error)))
            continue
        if spec.get("sensitive") is True:
            register_secret(str(values[name]))
    return values


def interpolate(
    source: Source,
    env: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    unset_env: list[Problem] | None = None,
) -> tuple[Any, list[Problem]]:
    """Return `source.data` with references replaced, and the problems found. Given
    `unset_env`, an unset `${env:NAME}` is noted there instead of being a problem (and
    left as written)."""
    data = source.data
    interpolator = _Interpolator(source, os.environ if env is None else env, {}, unset_env)
    declared = data.get("variables") if isinstance(data, dict) else None
    interpolator.declared = set(declared) if isinstance(declared, dict) else set()
    interpolator.variables = _variable_values(interpolator, declared, variables or {})
    if not isinstance(data, dict):
        return data, interpolator.problems
    result = {
        key: value if key == "variables" else interpolator.walk(value, (key,))
        for key, value in data.items()
    }
    return result, interpolator.problems
