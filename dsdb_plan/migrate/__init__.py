"""Migrations: move all or a subset of the data between two databases (issue 4).

The modules are imported by name; the package imports none of them, so a backup that uses
`load.read_ahead_of` or `sqlite_arrow` does not load the copier, its target checks and psycopg
(about a tenth of a backup's start-up, issue 15, aim 4).
"""
