"""Characters that drive a display rather than show on it, written so that they show.

A task's error and output are its own text, and agentcron passes them on: to the
terminal (``runs``, ``show``, ``list``, ``logs``), to its log, to the owner's channels.
Among them may be a terminal's controls (``ESC ]0;`` retitles the window, ``ESC [2J``
clears the screen, ``ESC ]8;;URL`` makes a link, C1's one-byte CSI does the same), a
NUL, or a bidirectional override that turns agentcron's own sentence around it
backwards (outside-in probe: all of them reached the owner unchanged). Shown instead:
C0 controls and DEL as ``^[``, ``^@``, ``^?``; C1 controls and the bidirectional
embeddings, overrides and isolates as ``<U+202E>``. Newlines and tabs stay.
"""

from __future__ import annotations

import re

_BIDI = "\u202a-\u202e\u2066-\u2069"
_TERMINAL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}]")  # keeps \r (CRLF output)


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
    returns too (an output's CRLF line ends)."""
    return _TEXT.sub(_shown, text) if _TEXT.search(text) else text
