"""Errors the kit raises itself; errors from PostgreSQL reach callers as the driver raises them."""

from __future__ import annotations


class CowError(Exception):
    """Base class of every error raised by agentcow."""


class InvalidIdError(CowError, ValueError):
    """A session or operation id is not a UUID."""


class InvalidIdentifierError(CowError, ValueError):
    """A table, schema or column name cannot be used (empty, too long once suffixed, ...)."""


class TableNotFoundError(CowError, LookupError):
    """The named table does not exist in the schema."""


class UnsupportedTableError(CowError):
    """The table cannot be COW-enabled as it is (no primary key, partitioned, reserved names...)."""


class NotDeployedError(CowError):
    """deploy_cow_functions() has not been run on this database."""


class KitVersionError(CowError):
    """The database holds a kit version this package cannot upgrade or use."""


class PendingChangesError(CowError):
    """Sessions still hold changes for a table that is being disabled."""


class DependencyCycleError(CowError, ValueError):
    """Dirty tables reference each other in a cycle and FK checks are not deferred."""
