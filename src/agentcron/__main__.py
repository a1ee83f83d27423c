"""``python -m agentcron`` is the same as the ``agentcron`` command."""

from agentcron.interfaces.cli import main

main()
