"""The service's advice as the CLI says it: the command that does it (see
:mod:`agentcron._service.advice`; the API, MCP and the dashboard have their own)."""

from __future__ import annotations

from agentcron._service.advice import Act, Wording

CLI_WORDS: Wording = {
    Act.PAUSE: "or stop it firing with `agentcron pause {task}`",
    Act.TRIGGER: "`agentcron trigger` runs a task now",
    Act.LIST_RUNS: "`agentcron runs` lists them",
    Act.LIST_INCIDENTS: "`agentcron incidents` lists them",
    Act.START_DAEMON: "`agentcron run` starts the daemon",
}
