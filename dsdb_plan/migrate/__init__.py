"""Migrations: move all or a subset of the data between two databases (issue 4)."""
