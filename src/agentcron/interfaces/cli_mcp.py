"""``agentcron mcp``: serve agentcron's tools to one agent over stdio (MCP).

An MCP client (Claude Desktop, Claude Code…) starts this command and talks to it
on stdin/stdout, so nothing but the protocol may be written to stdout: problems go
to stderr, with a non-zero exit before the server starts. The agent is one of the
config's ``agents.clients`` (``--agent NAME``; the only one when there is one), and
its bounds apply to every tool. The config's tasks are not synced here (the
daemon does that); its time zone and ``defaults`` apply to the tasks added.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.markup import escape

from agentcron.interfaces.cli_options import DbOpt
from agentcron.interfaces.render import SafeConsole

_err = SafeConsole(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``mcp`` command to ``app``."""
    app.command(
        "mcp",
        help="Serve agentcron's tools to an agent over stdio (MCP), within the bounds "
        "of the config's agents: section.",
    )(mcp)


def _fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


def mcp(
    agent: Annotated[
        str | None,
        typer.Option("--agent", help="Which of the config's agents.clients is calling"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file (default ./agentcron.yaml)")
    ] = None,
    home: Annotated[Path | None, typer.Option("--home", help="State folder")] = None,
    db: DbOpt = None,
) -> None:
    """Serve agentcron's tools to one agent over stdio."""
    import logging

    import anyio

    from agentcron.config.agents import load_with_agents
    from agentcron.config.errors import ConfigError
    from agentcron.interfaces import cli
    from agentcron.interfaces.mcp import Caller, build_server, scheduled_run_slot
    from agentcron.logs import setup_logging
    from agentcron.service import Actor, Defaults, Service
    from agentcron.store import StoreError, open_store

    path = cli._config_path(config)
    try:
        loaded, agents = load_with_agents(path)
    except ConfigError as exc:
        _fail(f"the config is needed for the agents' bounds and is not usable:\n{exc}")
    if not agents.clients:
        _fail(
            f"{path} lets no agent in: add an agents: section with a client, e.g.\n"
            "agents:\n  clients:\n    claude: {}\nthen start `agentcron mcp --agent claude`"
        )
    if agent is None:
        if len(agents.clients) > 1:
            _fail(
                f"say which agent calls: --agent NAME (one of {', '.join(sorted(agents.clients))})"
            )
        agent = next(iter(agents.clients))
    try:
        client = agents.client(agent)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    home_dir = cli._home(home)
    try:
        store = open_store(db or cli._globals.db, home_dir)
    except StoreError as exc:
        _fail(str(exc))
    try:
        service = Service(
            store,
            home_dir,
            defaults=Defaults(loaded.timezone, loaded.defaults, loaded.budget_rules()),
            actor=Actor(agent, "mcp"),
        )
        caller = Caller(agent, client, in_run=scheduled_run_slot() is not None)
        # stderr as the daemon writes it: one line a record (a locked database is one
        # line; the SDK's own setup would draw each traceback in a box of hundreds)
        setup_logging(logging.WARNING)
        server = build_server(lambda: service, agents, caller)
        anyio.run(server.run_stdio_async)
    finally:
        store.close()
