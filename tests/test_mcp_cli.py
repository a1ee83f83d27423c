"""``agentcron mcp`` refuses to start, with a sentence on stderr and exit code 2,
when the config lets no agent in, names no agent when several could call, names an
unknown one, or is broken (with the line). Serving itself is shown end to end in
test_mcp_e2e.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agentcron.interfaces.cli_mcp import register
from mcp_rig import stdio_exchange


def run(tmp_path: Path, config: str, *args: str) -> tuple[int, str]:
    path = tmp_path / "agentcron.yaml"
    path.write_text(config)
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:  # a group, so the command is called by its name as in agentcron
        # as agentcron's own callback does: an earlier test's --db stays in the globals
        from agentcron.interfaces.cli import _globals

        _globals.config = _globals.home = _globals.db = None
        _globals.json = False

    result = CliRunner().invoke(
        app, ["mcp", "--config", str(path), "--home", str(tmp_path / "home"), *args]
    )
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    ("config", "args", "words"),
    [
        ("timezone: UTC\n", (), "lets no agent in: add an agents: section with a client"),
        (
            "agents:\n  clients:\n    a: {}\n    b: {}\n",
            (),
            "say which agent calls: --agent NAME (one of a, b)",
        ),
        (
            "agents:\n  clients:\n    a: {}\n",
            ("--agent", "bob"),
            "no agent 'bob' under agents.clients in the config (configured: a)",
        ),
        (
            "agents:\n  clients:\n    a: {max_tasks: many}\n",
            (),
            "agentcron.yaml:3: agents.clients.a.max_tasks: must be a whole number",
        ),
    ],
)
def test_the_server_does_not_start_without_a_known_agent(
    tmp_path: Path, config: str, args: tuple[str, ...], words: str
) -> None:
    code, said = run(tmp_path, config, *args)
    assert code == 2, said
    assert words in said


def test_a_line_that_is_no_message_is_answered_not_dropped(tmp_path: Path) -> None:
    """Outside-in probe: over stdio, a line of malformed JSON, or a call holding a lone
    UTF-16 surrogate, got no answer at all, and a client waited for it forever. Each is
    answered (a parse error, or an invalid request to its id), changes nothing, and the
    next call is served."""
    import json

    by_id, _ = stdio_exchange(
        tmp_path,
        [
            '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_task",'
            '"arguments":{"name":"a\\ud800"}}}',
            "{bad json",
            json.dumps({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}),
        ],
        answers=3,
    )
    assert by_id[3]["error"]["code"] == -32600 and "surrogate" in by_id[3]["error"]["message"]
    assert by_id[None]["error"]["code"] == -32700
    assert "tools" in by_id[4]["result"]
