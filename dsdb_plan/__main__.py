"""`python -m dsdb_plan` runs the `dsdb` command line."""

from dsdb_plan.cli import run

run()
