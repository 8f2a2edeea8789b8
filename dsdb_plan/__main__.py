"""`python -m dsdb_plan` runs the `dsdb` command line."""

from dsdb_plan.console import run

run()
