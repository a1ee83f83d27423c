"""Characters that drive a display rather than show on it, written so that they show.

A task's error and output are its own text, and agentcron passes them on: to the
terminal (``runs``, ``show``, ``list``, ``logs``), to its log, to the owner's channels.
Among them may be a terminal's controls (``ESC ]0;`` retitles the window, ``ESC [2J``
clears the screen, ``ESC ]8;;URL`` makes a link, C1's one-byte CSI does the same), a
NUL, or a bidirectional override that turns agentcron's own sentence around it
backwards (outside-in probe: all of them reached the owner unchanged). Shown instead:
C0 controls and DEL as ``^[``, ``^@``, ``^?``; C1 controls and the bidirectional
embeddings and overrides as ``<U+202E>`` (on a terminal, the isolates too). Newlines
and tabs stay.
"""

from __future__ import annotations

import re

_OVERRIDES = "\u202a-\u202e"  # embeddings and overrides: they turn what follows around
_ISOLATES = "\u2066-\u2069"  # isolates: Unicode's advice for mixed-direction text
_TERMINAL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_OVERRIDES}{_ISOLATES}]")
_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_OVERRIDES}]")  # keeps \r
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20 or code == 0x7F:
        return f"^{chr(code ^ 0x40)}"
    return f"<U+{code:04X}>"


def visible(text: str) -> str:
    """``text`` for a terminal: every control but newline and tab shown, not obeyed."""
    return _TERMINAL.sub(_shown, text) if _TERMINAL.search(text) else text


def shown_text(text: str) -> str:
    """``text`` for a message or a log line: as :func:`visible`, keeping carriage
    returns (an output's CRLF line ends) and bidirectional isolates (which keep mixed
    directions apart, the opposite of an override)."""
    return _TEXT.sub(_shown, text) if _TEXT.search(text) else text


def first_control(text: str) -> str | None:
    """The first C0 or C1 control of ``text`` but line ends and tabs, shown; None if
    it has none (bidirectional marks are text: a Hebrew description holds isolates)."""
    found = _CONTROL.search(text)
    return None if found is None else _shown(found)
