"""``agentcron incidents``, ``health`` and ``audit``: what went wrong, whether anything
is firing, and who changed what. Registered on the main app by :func:`register`;
the same service calls and JSON shapes as ``/api/v1/incidents``, ``/health`` and
``/audit``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from agentcron.interfaces import render
from agentcron.interfaces.cli import (
    ConfigOpt,
    HomeOpt,
    JsonOpt,
    emit_json,
    err,
    out,
    service_for,
)
from agentcron.interfaces.cli_options import DbOpt


def register(app: typer.Typer) -> None:
    """Add the commands to ``app``."""
    app.command()(incidents)
    app.command()(health)
    app.command()(audit)


def incidents(
    incident_id: Annotated[int | None, typer.Argument(help="Show this incident")] = None,
    task: Annotated[str | None, typer.Option(help="Of this task only")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Open ones only")] = False,
    kind: Annotated[str | None, typer.Option(help="failure, stuck, overdue, ...")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    ack: Annotated[
        int | None, typer.Option("--ack", help="Acknowledge this incident (who and when are kept)")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Incidents, open ones first; one with its id; --ack ID says it was seen."""
    from agentcron.interfaces.schemas import IncidentView, shaped

    with service_for(config, home, db) as svc:
        zone = svc.owner_zone()
        if ack is not None:
            one = svc.acknowledge(ack)
        elif incident_id is not None:
            one = svc.incident(incident_id)
        else:
            rows = svc.incidents(task, open_only=open_only, kind=kind, limit=limit + 1)
            more, rows = len(rows) > limit, rows[:limit]
            if json_out:
                emit_json(shaped(IncidentView, rows))
            else:
                render.incidents_table(out, rows, zone)
            if more:  # 1,001 open incidents read as the 50 shown (outside-in probe)
                err.print(f"the first {limit} shown; there are more: --limit N shows N")
            return
    if json_out:
        emit_json(shaped(IncidentView, one))
    else:
        render.incident_detail(out, one, zone)


def health(
    config: ConfigOpt = None, home: HomeOpt = None, db: DbOpt = None, json_out: JsonOpt = False
) -> None:
    """Is a daemon alive and ticking; nodes, outbox backlog, channels."""
    from agentcron.interfaces.schemas import HealthView, shaped

    with service_for(config, home, db, sync=False) as svc:
        data = svc.health()
    if json_out:
        emit_json(shaped(HealthView, data))
    else:
        render.health(out, data)
    if not data["scheduling"]:
        raise typer.Exit(1)
    if render.untold(data):
        raise typer.Exit(2)  # it ticks, but what goes wrong does not reach the owner


def audit(
    task: Annotated[str | None, typer.Argument(help="Changes of this task only")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    before_id: Annotated[
        int | None, typer.Option("--before-id", help="Older than this entry (paging)")
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Changes made through the CLI, the API and the dashboard: who, when, before/after."""
    from agentcron.interfaces.schemas import AuditView, shaped

    with service_for(config, home, db, sync=False) as svc:
        rows = svc.audit(task, limit, before_id)
    if json_out:
        emit_json(shaped(AuditView, rows))
    else:
        render.audit_table(out, rows)
