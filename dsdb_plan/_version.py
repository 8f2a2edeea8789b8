"""The version, in one place: the package metadata reads it from here (pyproject.toml), and
`dsdb --version` without reading the installed metadata."""

__version__ = "0.1.0"
