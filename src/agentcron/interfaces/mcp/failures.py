"""A tool call that failed on something no tool expects, said to the agent as a
refusal it can act on, and to the owner's log as one line.

The SDK answers such a failure with only "Error executing tool NAME" and logs a
traceback of hundreds of lines: a locked database read to the agent as a crash of
no cause, and the agent could not tell whether to wait, to retry or to give up.
Here the failure is told by its class:

* the database is busy (another process holds SQLite's lock past the busy timeout):
  try again in a few seconds;
* the database could not be read or written (I/O, a lost connection): the same,
  and the owner's log names the error;
* the database cannot be used at all (damaged, not agentcron's, too new): the
  owner's to repair;
* anything else is agentcron's own error (a bug), not the agent's request.

A change tool first looks whether another process holds the SQLite database locked
(``Service.database_busy``, on a connection of its own that waits two seconds): the
store's own connection would wait 30 s for the lock and then fail. When it is held
the change is not tried, and the agent hears at once that nothing was changed. A
lock taken after the look is still waited for, as before.

A change tool also says what became of the change (:data:`NOTHING_CHANGED`, or
what :mod:`.changes` found after a failure during its write). The exception's text
stays in the log: it may name files or hosts of the owner's machine.
"""

from __future__ import annotations

import logging

from mcp.server.mcpserver.exceptions import ToolError

from agentcron.store.errors import StoreError, is_database_error

log = logging.getLogger("agentcron.mcp")

NOTHING_CHANGED = "Nothing was changed"
WRITE_TOOLS = frozenset(
    {"schedule_task", "update_task", "pause_task", "resume_task", "cancel_task", "trigger_task"}
)


def is_busy(exc: BaseException) -> bool:
    """A database held by another process: SQLite's lock, a lock timeout."""
    text = str(exc).lower()
    return is_database_error(exc) and ("locked" in text or "busy" in text)


def failure(tool: str, exc: BaseException, outcome: str | None = None) -> ToolError:
    """The refusal for ``exc`` raised by ``tool``, logged once as one line (a bug with
    its traceback). ``outcome``: what became of the change, said after the cause (for a
    change tool: :data:`NOTHING_CHANGED` unless the failure came during its write)."""
    kind = type(exc).__name__
    if outcome is None and tool in WRITE_TOOLS:
        outcome = NOTHING_CHANGED
    then = f". {outcome}" if outcome else ""
    if is_busy(exc):
        said = (
            f"the database is busy: another process holds its lock ({kind}: database is "
            f"locked), so {tool} could not finish{then}. Try again in a few seconds"
        )
    elif isinstance(exc, StoreError):
        said = (
            f"the database cannot be used ({kind}: damaged, not agentcron's, or made by a "
            f"newer version; the owner's log says which){then}. The owner must see to it: "
            "no tool can"
        )
    elif is_database_error(exc):
        said = (
            f"the database could not be read or written just now ({kind}){then}. Try again "
            "in a few seconds; if it lasts, the owner's log names the error"
        )
    else:
        said = (
            f"{tool} failed on an error of agentcron's own ({kind}), not on your request: "
            f"a bug for the owner to report (the server's log has its traceback){then}. The "
            "same call will likely fail again"
        )
    one_line = " ".join(f"{kind}: {exc}".split())[:300]
    if is_database_error(exc):
        log.warning("%s: %s [%s]", tool, said, one_line)
    else:
        log.error("%s failed on an error of agentcron's own: %s", tool, one_line, exc_info=exc)
    return ToolError(said)
