"""An MCP server for one copy-on-write session (``agentcow mcp``; needs the ``mcp`` extra).

Agent mode offers SQL inside the session and reads of what it holds; reviewer mode offers
the diff, commit, discard and undo. See :func:`create_server`.
"""

from agentcow.mcp.server import MODES, Mode, create_server

__all__ = ["MODES", "Mode", "create_server"]
