"""Migrations: move all or a subset of the data between two databases (issue 4)."""

from dsdb_plan.migrate.filters import PortableType as PortableType
from dsdb_plan.migrate.filters import compile_where as compile_where
from dsdb_plan.migrate.subset import TableSelection as TableSelection
from dsdb_plan.migrate.subset import count_rows as count_rows
from dsdb_plan.migrate.subset import estimate_rows as estimate_rows
from dsdb_plan.migrate.subset import select_subset as select_subset
from dsdb_plan.migrate.subset import select_tables as select_tables
from dsdb_plan.migrate.verify import VerifyResult as VerifyResult
from dsdb_plan.migrate.verify import subset_digest as subset_digest
from dsdb_plan.migrate.verify import verify_table as verify_table
