"""The published agent-cow API (``agentcow.postgres``): same names, same signatures."""

from agentcow.commit import (
    commit_cow_operations,
    commit_cow_session,
    commit_cow_session_schema,
    deferred_fk_constraints,
    discard_cow_operations,
    discard_cow_session,
    discard_cow_session_schema,
    get_dirty_tables,
)
from agentcow.deploy import deploy_cow_functions
from agentcow.enable import disable_cow, enable_cow
from agentcow.executor import Executor
from agentcow.operations import get_operation_dependencies, get_session_operations
from agentcow.schema import disable_cow_schema, enable_cow_schema
from agentcow.session import (
    CowPostgresConfig,
    apply_cow_variables,
    build_cow_variable_statements,
    reset_cow_variables,
    set_visible_operations,
)
from agentcow.status import CowStatus, get_cow_status, is_cow_enabled
from agentcow.types import CHANGE_TABLE_RESERVED_FIELDS, CowWrite

__all__ = [
    "CHANGE_TABLE_RESERVED_FIELDS",
    "CowPostgresConfig",
    "CowStatus",
    "CowWrite",
    "Executor",
    "apply_cow_variables",
    "build_cow_variable_statements",
    "commit_cow_operations",
    "commit_cow_session",
    "commit_cow_session_schema",
    "deferred_fk_constraints",
    "deploy_cow_functions",
    "disable_cow",
    "disable_cow_schema",
    "discard_cow_operations",
    "discard_cow_session",
    "discard_cow_session_schema",
    "enable_cow",
    "enable_cow_schema",
    "get_cow_status",
    "get_dirty_tables",
    "get_operation_dependencies",
    "get_session_operations",
    "is_cow_enabled",
    "reset_cow_variables",
    "set_visible_operations",
]
