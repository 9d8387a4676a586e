"""``python -m agentcow``: the ``agentcow`` command."""

from agentcow.cli import main

main()
