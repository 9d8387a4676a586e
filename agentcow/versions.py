"""The versions this package speaks: of the kit schema, and of the objects enable renders."""

from __future__ import annotations

#: The kit version ``deploy_cow_functions`` installs (``migrations/agentcow--X.sql`` plus
#: upgrade steps ``agentcow--X--Y.sql``).
KIT_VERSION = "0.3.0"

#: The version of the per-table objects (change table, triggers) this package renders; tables
#: enabled under an older one are brought up to it by ``upgrade_cow_tables``.
OBJECTS_VERSION = "0.3.0"
