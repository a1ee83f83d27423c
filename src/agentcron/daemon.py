"""``agentcron run``: the long-lived process that owns scheduling on this node.

It assembles the engine, the action runners and the background duties (config
reload, node heartbeat), each as its own asyncio task so a slow duty never
delays a tick. On start it recognises runs its own dead predecessor left behind
(same host, same home, process gone) and records them as lost at once rather
than waiting out their lease: leases are for other nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from agentcron.clock import Clock, SystemClock
from agentcron.config.errors import ConfigError
from agentcron.config.loader import load_config
from agentcron.config.schema import LoadedConfig
from agentcron.delivery.worker import DeliveryWorker
from agentcron.engine.actions import ActionRegistry
from agentcron.engine.engine import Engine, EngineSettings
from agentcron.engine.runner import Finished
from agentcron.home import hostname, pid_alive
from agentcron.model import DeliveryStatus, Slot, SlotStatus, TaskSpec
from agentcron.notify.notifier import Notifier
from agentcron.notify.sender import OutboxSender
from agentcron.redact import redact
from agentcron.retention import prune_outputs
from agentcron.service import Defaults, Service
from agentcron.store import NodeInfo, Store, open_store
from agentcron.watchdog.pulse import ping_fail_blocking, pulse_forever
from agentcron.watchdog.watchdog import Watchdog

log = logging.getLogger("agentcron.daemon")


@dataclass
class DaemonOptions:
    config_path: Path | None
    home: Path
    db_url: str | None = None
    poll_interval: float = 1.0
    reload_interval: float = 2.0
    heartbeat_interval: float = 5.0
    shutdown_grace: float = 10.0
    lease_seconds: float = 60.0
    watchdog_interval: float = 5.0
    pulse_interval: float = 60.0
    retention_interval: float = 3600.0
    extra_listeners: list[Callable[[Finished], None]] = field(default_factory=list)
    # Without a config file (the Python API): the settings and tasks to run.
    base_config: LoadedConfig | None = None
    code_tasks: dict[str, TaskSpec] = field(default_factory=dict)
    callables: dict[str, Callable[..., Any]] = field(default_factory=dict)
    tune_gc: bool = True  # see tune_gc()


def tune_gc() -> None:
    """Set the garbage collector up for a long-running scheduler.

    A daemon holds many long-lived objects (every task's spec and schedule) and makes
    many short-lived ones per run. With Python's default thresholds the collector
    walks the long-lived ones again every few hundred runs: about a sixth of the
    loop's time in a burst of 2,000 runs, measured with ``gc.callbacks``. So what
    start-up built is frozen (it lives as long as the daemon; reference counting
    still frees it) and the youngest generation is collected ten times less often.
    """
    gc.collect(1)  # the young generations only: a full pass over 100,000 specs takes 0.4 s
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, 7000), middle, old)


class Daemon:
    def __init__(self, options: DaemonOptions, clock: Clock | None = None) -> None:
        self.options = options
        self.clock = clock or SystemClock()
        self.node_id = f"{hostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.config: LoadedConfig | None = None
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.registry: ActionRegistry | None = None
        self.service: Service | None = None
        self.stop_event = asyncio.Event()
        self._config_stamp: str | None = None

    # ---- assembly ----------------------------------------------------------------
    def _load(self) -> LoadedConfig:
        if self.options.config_path is None:
            if self.options.base_config is None:
                raise ValueError("a daemon needs a config file or a base_config")
            return self.options.base_config
        config = load_config(self.options.config_path)
        self._config_stamp = _stamp(self.options.config_path)
        return config

    def _dead_predecessors(self, store: Store) -> list[str]:
        host = hostname()
        home = str(self.options.home)
        dead = []
        for node in store.nodes():
            if node.stopped_at is not None or node.node_id == self.node_id:
                continue
            if (
                node.host == host
                and node.home == home
                and (node.pid == os.getpid() or not pid_alive(node.pid))
            ):
                dead.append(node.node_id)
                store.stop_node(node.node_id, self.clock.now())
        return dead

    async def start(self) -> None:
        self.config = self._load()
        store = self.store = open_store(self.options.db_url, self.options.home)
        store.start_background_work()
        now = self.clock.now()
        dead = self._dead_predecessors(store)
        store.register_node(
            NodeInfo(self.node_id, hostname(), os.getpid(), str(self.options.home), now, now)
        )
        self.service = Service(
            store,
            self.options.home,
            self.clock,
            Defaults(self.config.timezone, self.config.defaults),
        )
        added, changed, removed = self.service.sync_file_tasks(self.config.tasks)
        log.info(
            "config %s: %d tasks (%d added, %d changed, %d removed)",
            self.config.source,
            len(self.config.tasks),
            len(added),
            len(changed),
            len(removed),
        )
        if self.options.code_tasks:
            self.service.upsert_code_tasks(list(self.options.code_tasks.values()))
        folder = self.options.config_path.parent if self.options.config_path else Path.cwd()
        self.registry = ActionRegistry(
            pool_size=min(self.config.max_concurrency, 4), cwd=str(folder.resolve())
        )
        for target, func in self.options.callables.items():
            self.registry.register_callable(target, func)
        # only what this node was told to run: reading every stored spec costs seconds
        # with 100,000 tasks (API-added python tasks start the pool on first use)
        await self.registry.start([*self.config.tasks.values(), *self.options.code_tasks.values()])
        self.engine = Engine(
            store,
            self.clock,
            EngineSettings(
                home=self.options.home,
                owner=self.node_id,
                max_concurrency=self.config.max_concurrency,
                default_zone=self.config.timezone,
                poll_interval=self.options.poll_interval,
                lease=_seconds(self.options.lease_seconds),
                dead_owners=tuple(dead),
            ),
            self.registry,
        )
        self._wire_duties(store)
        self.engine.listeners.extend(self.options.extra_listeners)
        self.engine.listeners.append(_log_finished)
        if dead:
            log.warning(
                "previous daemon(s) %s died; their running slots are recorded as lost",
                ", ".join(dead),
            )

    def _wire_duties(self, store: Store) -> None:
        """Notifier, outbox sender, delivery worker and watchdog around the engine."""
        assert self.engine is not None and self.config is not None and self.service is not None
        loop = asyncio.get_running_loop()
        self.sender = OutboxSender(store, clock=self.clock)

        def wake_sender() -> None:
            loop.call_soon_threadsafe(self.sender.wake)

        self.notifier = Notifier(
            store, self.clock, self.config.notify, self.config.timezone, wake_sender=wake_sender
        )
        self.delivery = DeliveryWorker(store, self.clock, self.notifier.emit)
        self.engine.batch_listeners.append(self.notifier.on_finished_many)
        self.engine.batch_listeners.append(
            lambda ended: self.delivery.wake() if any(f.outcome.deliver_to for f in ended) else None
        )
        self.engine.slot_listeners.append(self._on_recorded_slot)
        service = self.service
        self.watchdog = Watchdog(
            store,
            self.clock,
            self.notifier.emit,
            period_of=service.period,
            count_fires=service.count_fires,
            interval=self.options.watchdog_interval,
            last_tick=lambda: self.engine.last_tick if self.engine else 0.0,
            on_stall=self._loop_stalled,
        )

    def _on_recorded_slot(self, spec: TaskSpec, slot: Slot) -> None:
        if slot.status is SlotStatus.SKIPPED:
            self.notifier.emit_skip(spec, slot, self.clock.now())

    def _loop_stalled(self, seconds: float) -> None:
        """Runs on the watchdog thread while the loop is stuck: the outbox sender lives on
        that loop, so the owner is told directly here (and through the dead man's switch);
        a channel that cannot be reached gets the message through the outbox later."""
        why = f"agentcron's scheduler loop has not ticked for {seconds:.0f}s"
        url = self.config.heartbeat_url if self.config else None
        if url:
            ping_fail_blocking(url, why)
        if self.config is None or not self.config.notify or self.store is None:
            return
        from agentcron.notify.channels import channel_for
        from agentcron.notify.messages import Message

        message = Message(
            title="agentcron: scheduler stalled",
            body=(
                f"✖ {why} on {hostname()} (pid {os.getpid()}): no task starts until it "
                "recovers. A run that blocks the daemon (an inline call that never yields) "
                "is the usual cause; restart the daemon if this does not clear."
            ),
            task="",
            event="stall",
            incident_kind="stall",
            severity="failure",
        )
        for target in self.config.notify:
            channel = channel_for(target)
            try:
                result = asyncio.run(channel.send(message))
            except Exception as exc:  # a channel bug must not end the watchdog
                log.warning("could not report the stall to %s: %s", channel.key, exc)
                continue
            if not result.ok:
                self.store.enqueue(channel.key, target, message, self.clock.now())

    async def run(self) -> None:
        # Handlers first: a SIGTERM while starting (systemd stopping a slow start) must
        # still end in a clean stop that records this node as stopped.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop_event.set)
        await self.start()
        assert self.engine is not None
        duties = [
            asyncio.create_task(self.engine.run_forever(self.stop_event), name="engine"),
            asyncio.create_task(self._reload_loop(), name="reload"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self.sender.run_forever(self.stop_event), name="outbox"),
            asyncio.create_task(self.delivery.run_forever(self.stop_event), name="delivery"),
            asyncio.create_task(self._retention_loop(), name="retention"),
        ]
        if self.config is not None and self.config.heartbeat_url:
            duties.append(
                asyncio.create_task(
                    pulse_forever(
                        self.config.heartbeat_url, self.stop_event, self.options.pulse_interval
                    ),
                    name="pulse",
                )
            )
        if self.options.tune_gc:  # after the first tick, which the engine task starts with
            loop.call_soon(tune_gc)
        self.watchdog.start()
        log.info(
            "agentcron running as %s (home %s, %s)",
            self.node_id,
            self.options.home,
            self.store.describe() if self.store else "?",
        )
        try:
            await self.stop_event.wait()
        finally:
            await self.close(duties)

    async def close(self, duties: list[asyncio.Task[None]]) -> None:
        self.stop_event.set()
        self.watchdog.stop()
        for t in duties:
            t.cancel()
        await asyncio.gather(*duties, return_exceptions=True)
        if self.engine is not None:
            await self.engine.shutdown(self.options.shutdown_grace)
        if self.registry is not None:
            await self.registry.close()
        if self.store is not None:
            self.store.stop_node(self.node_id, self.clock.now())
            self.store.close()
        log.info("agentcron stopped")

    # ---- duties ------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        assert self.store is not None
        while not self.stop_event.is_set():
            try:
                self.store.heartbeat(self.node_id, self.clock.now())
            except Exception:
                log.exception("could not record the daemon heartbeat")
            await _sleep_or_stop(self.stop_event, self.options.heartbeat_interval)

    async def _retention_loop(self) -> None:
        assert self.store is not None
        while not self.stop_event.is_set():
            try:
                # outputs still waiting to be delivered are kept whatever their age
                keep = {
                    d.output_path
                    for d in self.store.deliveries(limit=10_000)
                    if d.output_path
                    and d.status in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
                }
                removed = await asyncio.to_thread(
                    prune_outputs, self.options.home, self.store.get_task, keep
                )
                if removed:
                    log.info("pruned %d kept output file(s) past keep_outputs", removed)
            except Exception:
                log.exception("pruning kept outputs failed")
            await _sleep_or_stop(self.stop_event, self.options.retention_interval)

    async def _reload_loop(self) -> None:
        while not self.stop_event.is_set():
            await _sleep_or_stop(self.stop_event, self.options.reload_interval)
            if self.stop_event.is_set():
                return
            try:
                self.reload_if_changed()
            except Exception:
                log.exception("config reload failed")

    def reload_if_changed(self) -> bool:
        """Apply a changed config file; keep the last good one when the new one is invalid."""
        if self.options.config_path is None:
            return False
        stamp = _stamp(self.options.config_path)
        if stamp == self._config_stamp:
            return False
        self._config_stamp = stamp
        try:
            config = load_config(self.options.config_path)
        except ConfigError as exc:
            log.error("config change rejected; still running the last good config:\n%s", exc)
            self.rejected_config = str(exc)
            self._tell_owner_config_rejected(exc)
            return False
        if self.config is not None and config.digest == self.config.digest:
            return False
        assert self.service is not None and self.engine is not None
        self.config = config
        self.rejected_config = None
        self.service.defaults = Defaults(config.timezone, config.defaults)
        self.engine.settings.max_concurrency = config.max_concurrency
        self.engine.settings.default_zone = config.timezone
        self.notifier.channels = list(config.notify)
        self.notifier.default_zone = config.timezone
        added, changed, removed = self.service.sync_file_tasks(config.tasks)
        log.info(
            "config reloaded: %d added, %d changed, %d removed",
            len(added),
            len(changed),
            len(removed),
        )
        self.engine.wake()
        return True

    rejected_config: str | None = None

    def _tell_owner_config_rejected(self, exc: ConfigError) -> None:
        if self.store is None or self.config is None:
            return
        from agentcron.notify.channels import channel_key
        from agentcron.notify.messages import Message

        message = Message(
            title="agentcron: config change rejected",
            body=(
                f"✖ The new {self.options.config_path} is invalid; agentcron keeps running the "
                f"last good config.\n\n{redact(str(exc))}"
            ),
            task="",
            event="config",
            incident_kind="config",
            severity="failure",
        )
        now = self.clock.now()
        for url in self.config.notify:
            self.store.enqueue(channel_key(url), url, message, now)
        self.sender.wake()


def _log_finished(finished: Finished) -> None:
    o = finished.outcome
    level = logging.INFO if o.ok else logging.WARNING
    log.log(
        level,
        "task=%s slot=%s attempt=%s status=%s%s",
        finished.spec.name,
        finished.slot.id,
        finished.attempt,
        o.slot_status.value,
        f" class={o.error_class.value} error={o.error}" if o.error_class else "",
    )


def _stamp(path: Path) -> str | None:
    """The file's content hash: an edit within one mtime tick is still seen."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
