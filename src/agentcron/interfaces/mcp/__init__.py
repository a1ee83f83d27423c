"""agentcron for agents: an MCP server whose tools schedule, change and read tasks
within the bounds the owner sets in the config's ``agents:`` section.

* :func:`build_server`: the tools on an SDK server (tests connect ``Client`` to it).
* :func:`mount_mcp`: the streamable-HTTP endpoint ``/mcp`` in the daemon's web app.
* ``agentcron mcp --agent NAME``: one agent over stdio (:mod:`agentcron.interfaces.cli_mcp`).

Needs the ``mcp`` extra (``pip install 'agentcron[mcp]'``).
"""

from agentcron.interfaces.mcp.http import MCP_PATH, mount_mcp
from agentcron.interfaces.mcp.policy import Caller, Policy, Refused
from agentcron.interfaces.mcp.server import build_server
from agentcron.interfaces.mcp.stdio import scheduled_run_slot

__all__ = [
    "MCP_PATH",
    "Caller",
    "Policy",
    "Refused",
    "build_server",
    "mount_mcp",
    "scheduled_run_slot",
]
