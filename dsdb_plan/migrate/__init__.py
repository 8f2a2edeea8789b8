"""Migrations: move all or a subset of the data between two databases (issue 4)."""

from dsdb_plan.migrate.copier import CopyResult as CopyResult
from dsdb_plan.migrate.copier import Mode as Mode
from dsdb_plan.migrate.copier import copy_table as copy_table
from dsdb_plan.migrate.filters import PortableType as PortableType
from dsdb_plan.migrate.filters import compile_where as compile_where
from dsdb_plan.migrate.load import BatchWriter as BatchWriter
from dsdb_plan.migrate.load import batch_writer as batch_writer
from dsdb_plan.migrate.load import load_rows as load_rows
from dsdb_plan.migrate.subset import TableSelection as TableSelection
from dsdb_plan.migrate.subset import count_rows as count_rows
from dsdb_plan.migrate.subset import select_subset as select_subset
from dsdb_plan.migrate.subset import select_tables as select_tables
from dsdb_plan.migrate.target import TargetCheck as TargetCheck
from dsdb_plan.migrate.target import ensure_target as ensure_target
from dsdb_plan.migrate.target import finish_target as finish_target
from dsdb_plan.migrate.target import inspect_target as inspect_target
from dsdb_plan.migrate.verify import VerifyResult as VerifyResult
from dsdb_plan.migrate.verify import subset_digest as subset_digest
from dsdb_plan.migrate.verify import verify_table as verify_table
