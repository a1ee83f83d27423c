"""``python -m agentcron.interfaces.mcp [--agent NAME] [--config …]``: the same as
``agentcron mcp``, for clients that start a module rather than a command."""

import typer

from agentcron.interfaces.cli_mcp import register

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
register(app)
app()
