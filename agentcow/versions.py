"""The versions this package speaks: of the kit schema, and of the objects enable renders."""

from __future__ import annotations

#: The kit version ``deploy_cow_functions`` installs (``migrations/agentcow--X.sql`` plus
#: upgrade steps ``agentcow--X--Y.sql``).
KIT_VERSION = "0.3.0"

#: The layout of the per-table objects (change table, triggers) this package renders; tables
#: enabled under an older one are brought up to it by ``upgrade_cow_tables``.
TABLE_LAYOUT = "0.3.0"
