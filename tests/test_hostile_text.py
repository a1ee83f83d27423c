"""A task's own text (its error, its output, an API client's description) is shown, never
obeyed: terminal escapes, NULs and bidirectional overrides reached the owner's terminal
(`runs`, `show`, `list`, `incidents`, the daemon's log) and every channel unchanged, and
a task name with a trailing newline passed as a second task of the same name
(outside-in probe)."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from agentcron.config.errors import ConfigError
from agentcron.config.loader import validate_task_mapping
from agentcron.controls import shown_text, visible
from agentcron.interfaces import render
from agentcron.interfaces.render import SafeConsole
from agentcron.logs import RedactingFormatter
from agentcron.model import Message, TaskSpec
from agentcron.store._rows import parse_spec

HOSTILE = (
    "Error: \x1b]0;ERRTITLE\x07 \x1b[2J \x1b]8;;http://evil.example/\x07LINK \x9b31m \u202eRLO \x00"
)


def test_controls_are_written_so_that_they_show() -> None:
    assert visible("plain\ttext\nline") == "plain\ttext\nline"
    assert visible(HOSTILE) == (
        "Error: ^[]0;ERRTITLE^G ^[[2J ^[]8;;http://evil.example/^GLINK <U+009B>31m <U+202E>RLO ^@"
    )
    assert visible("a\rb\x7f") == "a^Mb^?"
    assert shown_text("line\r\nnext\x1b[0m") == "line\r\nnext^[[0m"  # CRLF kept
    # isolates keep mixed directions apart (the opposite of an override): kept in text
    hebrew = "\u2067שלום\u2069 and \u202eoverride"
    assert shown_text(hebrew) == "\u2067שלום\u2069 and <U+202E>override"
    assert visible(hebrew) == "<U+2067>שלום<U+2069> and <U+202E>override"
    assert visible(visible(HOSTILE)) == visible(HOSTILE)


def _run(error: str) -> dict[str, Any]:
    run = {"id": 7, "task": "t", "scheduled_for": "2026-06-01T10:00:00+00:00"}
    run |= {"status": "failed", "reason": None, "attempts": 1, "error_class": "code_error"}
    run |= {"error": error, "started_at": None, "finished_at": None, "next_attempt_at": None}
    run |= {"delivery_status": "none", "output": None, "output_path": None}
    return run


def test_a_terminal_is_never_driven_by_what_a_table_shows() -> None:
    """Every table and line of the CLI goes through one console: the error in `runs`, an
    incident's summary, a health detail in `list` were printed raw."""
    screen = io.StringIO()
    console = SafeConsole(file=screen, width=300, force_terminal=True)
    render.runs_table(console, [_run(HOSTILE)])
    render.incidents_table(
        console,
        [
            {
                "id": 1,
                "task": "t",
                "kind": "failure",
                "opened_at": "2026-06-01T10:00:00+00:00",
                "closed_at": None,
                "summary": HOSTILE,
                "acknowledged_at": None,
                "acknowledged_by": None,
                "open": True,
                "escalated": False,
            }
        ],
    )
    shown = screen.getvalue()
    for raw in ("\x1b]0;", "\x1b[2J", "\x1b]8;;", "\x9b", "\u202e", "\x00", "\x07"):
        assert raw not in shown, (raw, shown)
    assert "^[]0;ERRTITLE" in shown and "<U+202E>RLO" in shown  # (Rich drops the BEL)
    assert "\x1b[" in shown  # Rich's own styles still reach the terminal


def test_piped_output_keeps_the_bytes_as_printed() -> None:
    screen = io.StringIO()
    SafeConsole(file=screen, width=300).print("a \x1b[31mred\x1b[0m", markup=False)
    assert screen.getvalue() == "a \x1b[31mred\x1b[0m\n"


def test_the_daemons_log_shows_a_quoted_error_escaped() -> None:
    record = logging.LogRecord("agentcron.daemon", logging.WARNING, "x", 1, "%s", (HOSTILE,), None)
    line = RedactingFormatter("%(message)s", secrets=[]).format(record)
    assert line == visible(HOSTILE)


def test_messages_to_channels_show_controls() -> None:
    msg = Message(
        title="✖ t failed\x1b[2J",
        body=f"the command exited with code 1: {HOSTILE}\r\nNext run: 15:00",
        task="t",
        event="opened",
        incident_kind="failure",
        severity="failure",
    )
    assert msg.title == "✖ t failed^[[2J"
    assert msg.body.endswith("<U+202E>RLO ^@\r\nNext run: 15:00")
    assert Message.from_dict(msg.to_dict()) == msg
    # a row an older version queued is sent as stored: its idempotency key stays
    stored = {**msg.to_dict(), "title": "raw\x1b[2J"}
    assert Message.from_dict(stored).title == "raw\x1b[2J"
    # a delivery is the task's output itself: the owner's, as written
    output = "Hello, \u2068Bob\u2069! \x1b[1mbold\x1b[0m page1\x0cpage2"
    delivery = Message("story [1/1]", output, "t", "delivery", "", "info")
    assert delivery.body == output


@pytest.mark.parametrize("name", ["dup\n", "sneaky\n", "a\nb"])
def test_a_task_name_with_a_newline_is_refused(name: str) -> None:
    """`$` matches before a final newline: "dup\\n" passed beside "dup", two tasks that
    `list` showed alike, and its output folder was ``outputs/dup\\n/``."""
    with pytest.raises(ValueError, match="invalid task name"):
        TaskSpec(name=name, every="1h", command=["true"])
    with pytest.raises(ConfigError, match="invalid task name"):
        validate_task_mapping(name, {"every": "1h", "command": ["true"]})


def test_a_description_is_text_without_controls_where_it_comes_in() -> None:
    ok = validate_task_mapping(
        "t", {"every": "1h", "command": ["true"], "description": "two\r\nlines\tand a tab"}
    )
    assert ok.description == "two\r\nlines\tand a tab"
    for bad, found in (("x \x1b]0;T\x07 y", "^["), ("c1 \x9b31m", "<U+009B>")):
        with pytest.raises(ConfigError) as caught:
            validate_task_mapping("t", {"every": "1h", "command": ["true"], "description": bad})
        assert str(caught.value) == (
            "tasks.t.description: a description is text: lines and tabs, without control "
            f"characters (found {found})"
        )
    # review: a Hebrew description wrapped in isolates refused the whole file
    hebrew = "\u2067תיאור\u2069 in two directions"
    assert (
        validate_task_mapping(
            "t", {"every": "1h", "command": ["true"], "description": hebrew}
        ).description
        == hebrew
    )
    # one stored before keeps loading (shown escaped): refused only where it comes in
    stored = TaskSpec(name="t", every="1h", command=["true"], description="x \x1b[2J")
    assert parse_spec(stored.model_dump_json()).description == "x \x1b[2J"


def test_the_dashboard_isolates_a_tasks_text_from_the_page_around_it() -> None:
    """An error holding U+202E sat in a plain <td> and <span class="error">: the page's
    own words after it in the same block were shown backwards."""
    import re
    from pathlib import Path

    import agentcron.interfaces.dashboard as dashboard

    css = (Path(dashboard.__file__).parent / "static" / "dashboard.css").read_text()
    rule = re.search(r"^([^{}\n]*)\{\s*unicode-bidi:\s*isolate;\s*\}", css, re.MULTILINE)
    assert rule is not None, "no unicode-bidi: isolate rule"
    selectors = {s.strip() for s in rule.group(1).split(",")}
    assert {"td", ".error", "pre"} <= selectors, selectors


def test_a_long_list_written_as_plain_columns_is_shown_too() -> None:
    """Review: over 500 tasks `list` writes plain columns straight to the console's
    file, past SafeConsole: a health detail with an escape went to the terminal raw."""
    rows = [
        {
            "name": f"t{i:03d}",
            "source": "api",
            "schedule": "every 1h",
            "timezone": "UTC",
            "paused": i == 0,
            "pause_reason": "why \x1b]0;pwned\x07" if i == 0 else None,
            "health": "failing",
            "health_detail": f"failing: {HOSTILE}",
            "next_run": None,
            "last_status": "failed",
            "delivery_status": "none",
        }
        for i in range(501)
    ]
    screen = io.StringIO()
    render.tasks_table(SafeConsole(file=screen, width=300, force_terminal=True), rows)
    shown = screen.getvalue()
    assert shown.count("\n") > 500
    assert "\x1b]0;" not in shown and "^[]0;" in shown
