"""The tools an agent calls: each checks the agent's bounds (:mod:`.policy`), then
calls one :class:`~agentcron.service.Service` method as the agent (audited ``via
mcp``), and answers with a typed result or a tool error the agent can act on.

Who calls is fixed for a stdio server (``--agent``) and comes from the request for
the HTTP endpoint (see :mod:`.http`). Reads are in :mod:`.reads`, changes in
:mod:`.changes`, what they share in :mod:`._core`.
"""

from __future__ import annotations

from agentcron.interfaces.mcp._core import CALLER_KEY, answers
from agentcron.interfaces.mcp.changes import ChangeTools
from agentcron.interfaces.mcp.reads import ReadTools

__all__ = ["CALLER_KEY", "Tools", "answers"]


class Tools(ReadTools, ChangeTools):
    """Every tool function, bound to a service, the owner's ``agents:`` and a caller."""
