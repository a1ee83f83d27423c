"""What the daemon needs to serve the web app: whether to (``api:`` in the config or
``run --api HOST:PORT``), with which token, and the server itself.

Refusals happen here, before anything is scheduled: an address other machines can
reach without a token, a ``token_env`` that is not set, the ``api`` extra missing.
The daemon then exits with the reason, as it does for an invalid config.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentcron.config.agents import AgentsConfig
from agentcron.config.errors import ConfigError, ConfigProblem
from agentcron.config.schema import ApiConfig, is_loopback_host

if TYPE_CHECKING:
    from agentcron.clock import Clock
    from agentcron.engine.engine import Engine
    from agentcron.interfaces.api.server import ApiServer
    from agentcron.metrics import Metrics
    from agentcron.service import Defaults, Service


def parse_listen(value: str) -> tuple[str, int]:
    """``127.0.0.1:8765``, ``[::1]:0``, ``localhost:8080`` -> (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip()
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f"--api {value!r}: give HOST:PORT, e.g. 127.0.0.1:8765 (port 0 picks a free one)"
        )
    return host.strip("[]"), int(port)


def api_settings(config: ApiConfig, listen: tuple[str, int] | None) -> ApiConfig | None:
    """The API to serve, or None when it is off. ``listen`` (from ``--api``) turns it
    on at that address, keeping the config's token settings."""
    if listen is None:
        return config if config.enabled else None
    host, port = listen
    try:
        return ApiConfig(
            enabled=True,
            host=host,
            port=port,
            token=config.token,
            token_env=config.token_env,
        )
    except ValueError as exc:
        raise ConfigError([ConfigProblem("api", _first_error(exc))], "--api") from None


def resolve_token(api: ApiConfig) -> str | None:
    """The token to require (None on loopback without one); raises ConfigError when
    the daemon must not start: a token asked for but unset, or none off loopback."""
    try:
        token = api.resolved_token()
    except ValueError as exc:
        raise ConfigError([ConfigProblem("api.token_env", str(exc))], "") from None
    if token is None and not is_loopback_host(api.host):
        raise ConfigError(
            [
                ConfigProblem(
                    "api.token",
                    f"the API would listen on {api.host} without a token; set api.token or "
                    "api.token_env, or listen on 127.0.0.1",
                )
            ],
            "",
        )
    return token


@dataclass
class DaemonApi:
    """The server, the metrics, and the services the app opened (one per start)."""

    server: ApiServer
    metrics: Metrics
    services: list[Service]

    def set_defaults(self, defaults: Defaults) -> None:
        """A reload changed the config's defaults: the API's tasks get them too."""
        for service in self.services:
            service.defaults = defaults


def daemon_api(
    config: ApiConfig,
    listen: tuple[str, int] | None,
    *,
    db_url: str | None,
    home: Path,
    clock: Clock,
    defaults: Callable[[], Defaults],
    engine: Engine,
    notify_urls: Callable[[], list[str]],
    agents: AgentsConfig | None = None,
) -> DaemonApi | None:
    """Build (not start) the daemon's web app, or None when the API is off. The
    metrics are attached to ``engine`` here; the app's service opens its own
    connection to the database when the server starts."""
    api = api_settings(config, listen)
    if api is None:
        return None
    token = resolve_token(api)
    try:
        from agentcron.interfaces.api.app import ApiSettings, create_app
        from agentcron.interfaces.api.server import ApiServer
        from agentcron.metrics import Metrics
    except ImportError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    "api",
                    f"serving the API needs the api extra: pip install 'agentcron[api]' ({exc})",
                )
            ],
            "",
        ) from None
    from agentcron.service import Actor, Service
    from agentcron.store import open_store

    metrics = Metrics()
    metrics.attach(engine)
    loop = asyncio.get_running_loop()
    services: list[Service] = []

    def wake() -> None:
        loop.call_soon_threadsafe(engine.wake)

    def open_service() -> Service:
        service = Service(open_store(db_url, home), home, clock, defaults(), Actor("api", "api"))
        service.on_change = wake
        services[:] = [service]
        return service

    settings = ApiSettings(token=token, metrics=metrics, notify_urls=notify_urls, agents=agents)
    try:
        app = create_app(open_service, settings)
    except ImportError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    "agents",
                    f"serving /mcp needs the mcp extra: pip install 'agentcron[mcp]' ({exc})",
                )
            ],
            "",
        ) from None
    except ValueError as exc:  # a client's token_env is not set
        raise ConfigError([ConfigProblem("agents", str(exc))], "") from None
    return DaemonApi(ApiServer(app, api.host, api.port), metrics, services)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0].get("msg", exc)).removeprefix("Value error, ")
    return str(exc)
