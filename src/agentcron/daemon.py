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
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agentcron.actions.loop_holds import Hold, holds_of
from agentcron.beats import on_beat, sleep_to_beat
from agentcron.clock import Clock, SystemClock
from agentcron.config._env import current_environ
from agentcron.config.errors import ConfigError, ConfigProblem
from agentcron.config.loader import load_config
from agentcron.config.nodes import FOUND_KEY as DIVERGENCE_FOUND_KEY
from agentcron.config.nodes import META_KEY as FILE_TASKS_KEY
from agentcron.config.nodes import SETTLE as DIVERGENCE_SETTLE
from agentcron.config.nodes import (
    Applied,
    Divergence,
    divergence_text,
    divergence_verdict,
    first_to_tell,
    loads,
    loads_divergence,
    other_live_node,
    tasks_digest,
)
from agentcron.config.schema import LoadedConfig
from agentcron.delivery.worker import DeliveryWorker
from agentcron.durations import format_duration
from agentcron.engine.actions import ActionRegistry
from agentcron.engine.budgets import BudgetGate
from agentcron.engine.diskroom import takes_writes
from agentcron.engine.engine import Engine
from agentcron.engine.health import Outage, describe_error
from agentcron.engine.settings import EngineSettings, TickReport
from agentcron.faultlog import FaultLog
from agentcron.home import hostname, pid_alive
from agentcron.instance_lock import InstanceLock
from agentcron.log_fault import LogFault
from agentcron.logs import log_writer
from agentcron.model import ClockStepped, Finished, Message, NodeInfo, Slot, TaskSpec
from agentcron.model.message import Severity
from agentcron.notify.direct import daemon_message, tell_owner_directly
from agentcron.notify.notifier import Notifier
from agentcron.notify.sender import OutboxSender
from agentcron.redact import redact
from agentcron.retention import (
    OutputsCadence,
    busy_slots,
    default_keep_history,
    prune_history,
    prune_outputs,
)
from agentcron.schedules.zones import zone_label
from agentcron.service import DAEMON_STALE_AFTER, Defaults, Service
from agentcron.store import Store, open_store, parse_db_url
from agentcron.store.changes import ChangeListener
from agentcron.store.errors import StoreError, is_database_error
from agentcron.store.migrations import SCHEMA_VERSION
from agentcron.supervisor import PartFailure, Supervisor
from agentcron.ticks import TickRecorder
from agentcron.trouble import TroubleFile, outage_span, told_outage_left
from agentcron.watchdog.endpoint import HeartbeatMonitor
from agentcron.watchdog.peers import PeerNodes
from agentcron.watchdog.pulse import ping_fail_blocking
from agentcron.watchdog.watchdog import LOOP_STALL, Watchdog

log = logging.getLogger("agentcron.daemon")


def settings_changed(old: LoadedConfig, new: LoadedConfig) -> list[str]:
    """The top-level settings a reload changed, in words for the log: a reload of only
    ``max_concurrency`` was logged "0 added, 0 changed, 0 removed", as if nothing
    happened (outside-in probe). Values that may hold secrets (URLs) are not shown."""
    said: list[str] = []
    for key in ("max_concurrency", "timezone"):
        before, after = getattr(old, key), getattr(new, key)
        if before != after:
            said.append(f"{key} {before} → {after}")
    quiet = ("notify", "heartbeat_url", "defaults", "budget", "env_file")
    said += [f"{key} changed" for key in quiet if getattr(old, key) != getattr(new, key)]
    return said


@dataclass
class DaemonOptions:
    config_path: Path | None
    home: Path
    db_url: str | None = None
    # The daemon's beat (see agentcron.beats): the engine's look for other processes'
    # and nodes' work, and the outbox's and deliveries' looks. The other periodic duties
    # run on multiples of it, so an idle daemon wakes once per beat. Changes made
    # elsewhere are announced (agentcron.store.changes): the beat only bounds how long
    # an announcement that was lost goes unseen, and a longer one is what makes an idle
    # daemon cheap (issue 16: 0.073 % of a core at 2 s, 0.039 % at 6 s; bench/README.md).
    poll_interval: float = 6.0
    reload_interval: float = 6.0  # a stat of the config file; read only when it changed
    # a changed file is read once it has not changed for this long: an editor that
    # writes in place (truncate, then write) is not read half-written, which dropped
    # the tasks of its second half, and cancelled their waiting retries
    config_settle: float = 1.0
    # how long another live node has to apply the tasks this node's file changed before
    # their difference is told (a rollout reaching every node is not): config.nodes
    divergence_settle: float = DIVERGENCE_SETTLE.total_seconds()
    heartbeat_interval: float = 6.0
    shutdown_grace: float = 10.0
    lease_seconds: float = 60.0
    watchdog_interval: float = 6.0
    pulse_interval: float = 60.0
    retention_interval: float = 3600.0
    extra_listeners: list[Callable[[Finished], None]] = field(default_factory=list)
    # Without a config file (the Python API): the settings and tasks to run.
    base_config: LoadedConfig | None = None
    code_tasks: dict[str, TaskSpec] = field(default_factory=dict)
    # the home's daemon lock this daemon holds (SQLite), kept at its path while it runs
    lock: InstanceLock | None = None
    callables: dict[str, Callable[..., Any]] = field(default_factory=dict)
    tune_gc: bool = True  # see tune_gc()
    # supervision: a part failing this often within the window makes the daemon exit
    max_part_failures: int = 5
    part_failure_window: float = 600.0
    part_backoff: float = 1.0
    stall_after: float = LOOP_STALL
    final_drain: float = 5.0  # seconds to send what the stop itself produced
    outage_notice_after: float = 10.0  # seconds of failing ticks before the owner is told
    recovery_hold: float = 30.0  # seconds working (and a write) before its end is told
    log_fault_after: float = 30.0  # seconds its log cannot be written before it is told
    api_listen: tuple[str, int] | None = None  # `run --api HOST:PORT`: serve the API there


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
        # given back at the end: each signal with what handled it before (the loop's
        # handler, or the process's), see _take_signal
        self._signals_taken: dict[signal.Signals, tuple[Any, Any]] = {}
        self.config: LoadedConfig | None = None
        self._said_untold_for: list[str] | None = None  # the channels it was last said for
        # the config as the daemon started with it: what a reload cannot change
        self._started_config: LoadedConfig | None = None
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.registry: ActionRegistry | None = None
        self.service: Service | None = None
        # one-shots recorded expired by a read of the file, until the engine's listeners
        # can hear of them (the first read comes before they exist)
        self._expired_at_read: list[tuple[TaskSpec, Slot]] = []
        self.stop_event = asyncio.Event()
        self._hup = asyncio.Event()  # a SIGHUP: the config watcher looks now
        self._config_stamp: str | None = None
        # the config file's stat when last read, and its env_file's
        self._config_file: tuple[_FileId | None, ...] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._unremoved_told: set[str] = set()  # files retention left, told (see there)
        self.supervisor: Supervisor | None = None
        self.api: Any = None  # interfaces.api.launch.DaemonApi when the API is served
        self._trouble_file = TroubleFile(options.home)  # said outside the database
        self._log_fault = LogFault(
            log_writer,
            self.clock.now,
            self._where,
            self._today_or_local,
            lambda message: self._tell_soon(message),
            self._write_config_note,
            told_after=options.log_fault_after,
        )

    @property
    def beat(self) -> float:
        """The daemon's beat: ``poll_interval``, but never more than a third of
        ``stall_after``. An idle loop passes once a beat, and the watchdog's stall check
        reads those passes: a quiet loop must never look stuck."""
        return min(self.options.poll_interval, self.options.stall_after / 3)

    # ---- assembly ----------------------------------------------------------------
    def _load(self) -> LoadedConfig:
        if self.options.config_path is None:
            if self.options.base_config is None:
                raise ValueError("a daemon needs a config file or a base_config")
            return self.options.base_config
        seen = _file_id(self.options.config_path)
        config = load_config(self.options.config_path)
        paths = self._watched(config)
        self._config_file = (seen, *(_file_id(p) for p in paths[1:]))
        self._config_stamp = _stamps(paths)
        return config

    def _watched(self, config: LoadedConfig | None) -> list[Path]:
        """The files a reload reads: the config file, and its env_file (a value changed
        there applies as a change of the config does; it was used until a restart while
        `validate`, `list` and `doctor` already read the new one: probe)."""
        assert self.options.config_path is not None
        paths = [self.options.config_path]
        if config is not None and config.env_file is not None:
            paths.append(Path(config.env_file))
        return paths

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

    @staticmethod
    def _release_stopped_claims(store: Store, now: datetime) -> None:
        """Claims on the outbox left by nodes recorded stopped (a send their stop cut
        short, whose release failed): nobody sends under them, and each held its
        channel's queue until it lapsed. Only a stop within a claim's length can
        have left a live one."""
        from agentcron.notify.sender import CLAIM_FOR

        stopped = [
            n.node_id
            for n in store.nodes()
            if n.stopped_at is not None and now - n.stopped_at <= CLAIM_FOR
        ]
        owners = [*stopped, *(f"{n}:watchdog" for n in stopped)]
        if stopped and store.release_claims(owners, now):
            log.warning("took over the unsent messages that %s left claimed", ", ".join(stopped))

    _loop: asyncio.AbstractEventLoop | None = None  # the one it started on: its engine's

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.config = self._started_config = self._load()
        from agentcron.home import secure_home

        await asyncio.to_thread(secure_home, self.options.home)  # 0700, before anything is kept
        await asyncio.to_thread(_say_unwritable_runs, self.options.home)
        self._left_outage = told_outage_left(self.options.home)  # before the file is made
        self._left_since = outage_span(self._left_outage)
        self._trouble_file.open()
        if self.config.api.enabled or self.options.api_listen is not None:
            # refused before anything is written: no token off loopback, token_env unset
            from agentcron.interfaces.api.launch import api_settings, resolve_token

            api = api_settings(self.config.api, self.options.api_listen)
            if api is not None:
                resolve_token(api)
        store = self.store = open_store(self.options.db_url, self.options.home, daemon=True)
        store.start_background_work()
        now = self.clock.now()
        dead = self._dead_predecessors(store)
        # the watchdog's stand-in sender claims as NODE:watchdog
        owners = [*dead, *(f"{n}:watchdog" for n in dead)]
        if dead and store.release_claims(owners, now):
            log.warning("took over the unsent messages and deliveries of %s", ", ".join(dead))
        self._release_stopped_claims(store, now)
        self._started_at = now
        store.register_node(
            NodeInfo(self.node_id, hostname(), os.getpid(), str(self.options.home), now, now)
        )
        self._registered = True
        self._database_id = database_identity(store)
        self.service = Service(
            store,
            self.options.home,
            self.clock,
            Defaults(self.config.timezone, self.config.defaults, self.config.budget_rules()),
        )
        self._refuse_clashes(self.config)
        added, changed, removed = self._sync_file_tasks(self.config)
        try:
            planned, unreadable = self.service.plan_unplanned()
        except StoreError as exc:  # the database refused the look: the next start looks
            log.error("could not look for tasks with no next fire time: %s", exc)
            planned, unreadable = [], []
        for name in unreadable:
            log.error(
                "task %s has no next fire time and its row cannot be read (changed outside "
                "agentcron): it does not run until the row is corrected",
                name,
            )
        for name, fire in planned:
            log.warning(
                "task %s had no next fire time recorded although its schedule has one (its "
                "row was changed outside agentcron); planned again: next fire %s",
                name,
                fire.isoformat(timespec="seconds"),
            )
        self._tell_unplanned(planned, unreadable)
        log.info(
            "config %s: %d tasks (%d added, %d changed, %d removed)",
            self.config.source,
            len(self.config.tasks),
            len(added),
            len(changed),
            len(removed),
        )
        if self.options.code_tasks or self.options.config_path is None:
            # a program's own daemon (Scheduler): its tasks are the code tasks
            gone = self.service.upsert_code_tasks(list(self.options.code_tasks.values()))
            if gone:
                log.info("tasks no longer registered in code, removed: %s", ", ".join(gone))
        folder = self.options.config_path.parent if self.options.config_path else Path.cwd()
        self.registry = ActionRegistry(
            pool_size=self.config.max_concurrency, cwd=str(folder.resolve())
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
                poll_interval=self.beat,
                lease=_seconds(self.options.lease_seconds),
                # with several nodes (PostgreSQL) a command whose daemon is frozen for
                # its lease stops itself: another node may take the slot over after it
                fence=_seconds(self.options.lease_seconds)
                if parse_db_url(self.options.db_url, self.options.home).kind == "postgresql"
                else timedelta(0),
                dead_owners=tuple(dead),
                outage_notice_after=_seconds(self.options.outage_notice_after),
                recovery_hold=_seconds(self.options.recovery_hold),
            ),
            self.registry,
        )
        self._wire_duties(store)
        self._tell_expired_at_read()  # those of the first read, made before the notifier
        self.engine.after_pass.append(TickRecorder(store, self.node_id))
        self.engine.after_pass.append(self._tell_left_outage)
        self.api = self._build_api()
        self.engine.listeners.extend(self.options.extra_listeners)
        self.engine.listeners.append(_log_finished)
        if dead:
            log.warning(
                "previous daemon(s) %s died; their running slots are recorded as lost",
                ", ".join(dead),
            )
        self._started = True

    def _wire_duties(self, store: Store) -> None:
        """Notifier, outbox sender, delivery worker and watchdog around the engine."""
        assert self.engine is not None and self.config is not None and self.service is not None
        loop = asyncio.get_running_loop()
        self.sender = OutboxSender(store, clock=self.clock, owner=self.node_id)

        def wake_sender() -> None:
            loop.call_soon_threadsafe(self.sender.wake)

        self.notifier = Notifier(
            store, self.clock, self.config.notify, self.config.timezone, wake_sender=wake_sender
        )
        self.delivery = DeliveryWorker(
            store,
            self.clock,
            self.notifier.emit,
            owner=self.node_id,
            removed=self.notifier.on_removed_delivery,
        )
        self.notifier.attach(self.engine)
        self.notifier.others_running = self._others_running
        outputs = str(self.options.home / "outputs")
        self.notifier.storage.probe = lambda: takes_writes(outputs)
        self.budgets = BudgetGate(
            store, self.node_id, self.config.budget_rules(), self.config.timezone
        )
        self.budgets.listeners.append(self.notifier.on_budget)
        self.engine.gates.append(self.budgets.gate)
        self.engine.spenders.append(self.budgets.spend)
        self.engine.housekeeping.append(self.budgets.prune)
        self.peers = PeerNodes(
            store,
            self.node_id,
            lambda message: self.notifier.to_channels(message, ()),
            NODE_LOST_AFTER,
            self._local,
        )
        self.engine.housekeeping.append(self.peers.check)
        self.engine.batch_listeners.append(
            lambda ended: self.delivery.wake() if any(f.outcome.deliver_to for f in ended) else None
        )
        service = self.service
        self.watchdog = Watchdog(
            store,
            self.clock,
            self.notifier.emit,
            period_of=service.period,
            count_fires=service.count_fires,
            interval=self.options.watchdog_interval,
            last_tick=lambda: self.engine.health.last_pass if self.engine else 0.0,
            last_gap=lambda: self.engine.health.take_gap() if self.engine else None,
            last_full_pass=lambda: self.engine.last_full_pass if self.engine else None,
            last_caught_up=lambda: self.engine.last_caught_up_pass if self.engine else None,
            owner=self.node_id,
            ended_here=lambda: self.engine.ending_slots() if self.engine else set(),
            on_stall=self._loop_stalled,
            on_stall_end=self._loop_resumed,
            on_past_stall=self._loop_stalled_before,
            failing=lambda: self.engine is not None and self.engine.health.outage is not None,
            worked_since=lambda: self.engine.health.worked_since if self.engine else 0.0,
            stall_after=self.options.stall_after,
            outbox_owner=f"{self.node_id}:watchdog",
        )

        def stall_reason(at: datetime, zone: ZoneInfo) -> str | None:
            stall = self.watchdog.stall_covering(at)
            if stall is not None:
                return stall.reason(zone)
            hold = self._loop_hold(at)
            return hold.reason(zone) if hold is not None else self._left_outage_reason(at, zone)

        self.engine.stall_reason = stall_reason
        self.engine.on_outage.append(self._outage_began)
        self.engine.on_recovery.append(self._outage_ended)
        self.engine.clock_listeners.append(self._clock_stepped)

    def _clock_stepped(self, news: ClockStepped) -> None:
        """The wall clock went back and tasks were planned again: told when it moved
        some task's next run (a step that moved none is only logged)."""
        if not news.replanned and not news.ran_ahead:
            return
        from agentcron.notify.messages import clock_step_words

        title, body = clock_step_words(news, self._local)
        self._tell_owner_of_config(title, body, "warning", kind="clock")

    def _build_api(self) -> Any:
        """The web app (API, dashboard, /metrics) when asked for; not started yet."""
        assert self.config is not None and self.engine is not None
        if not self.config.api.enabled and self.options.api_listen is None:
            return None  # the api extra may not be installed: import nothing
        from agentcron.interfaces.api.launch import daemon_api

        return daemon_api(
            self.config.api,
            self.options.api_listen,
            db_url=self.options.db_url,
            home=self.options.home,
            clock=self.clock,
            defaults=lambda: self.service.defaults if self.service else Defaults(),
            engine=self.engine,
            notify_urls=lambda: list(self.config.notify) if self.config else [],
            agents=self.config.agents,
        )

    def _tell_api(self, text: str, ok: bool) -> None:
        mark = "✔" if ok else "✖"
        title = "HTTP API serving again" if ok else "HTTP API failing"
        self._tell_soon(daemon_message(title, f"{mark} {text} ({self._where()})", "api", ok=ok))

    # ---- telling the owner about agentcron itself ---------------------------------
    def _tell_directly(self, message: Message) -> int:
        """Blocking: straight to the channels, the outbox only for those that fail."""
        targets = list(self.config.notify) if self.config is not None else []
        store = self.store
        return tell_owner_directly(
            targets, message, store.enqueue if store is not None else None, self.clock.now
        )

    def _tell_soon(self, message: Message) -> None:
        """From the loop: send on a thread, keep the loop going."""
        task = asyncio.ensure_future(asyncio.to_thread(self._tell_directly, message))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _local(self, when: datetime) -> str:
        from agentcron.schedules.zones import resolve_zone

        zone = resolve_zone(self.config.timezone if self.config else None)
        return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")

    def _today_or_local(self, when: datetime) -> str:
        """A time in a message of now: ``02:03:10`` on the message's day (as messages
        word today's times; the full date read "since 2026-12-04 22:24:50 UTC" of a
        time minutes before), the full :meth:`_local` form on another day."""
        from agentcron.schedules.zones import resolve_zone

        zone = resolve_zone(self.config.timezone if self.config else None)
        local = when.astimezone(zone)
        if local.date() != self.clock.now().astimezone(zone).date():
            return self._local(when)
        return local.strftime("%H:%M:%S")

    def _where(self) -> str:
        return f"{hostname()} (pid {os.getpid()})"

    def _tell_unplanned(self, planned: list[tuple[str, datetime]], unreadable: list[str]) -> None:
        """Tasks the start found with no next fire time (their rows changed outside
        agentcron) are told, not only logged: whatever fell due while a task had none
        never ran, and nothing else says so (review of the change that plans them)."""
        if not planned and not unreadable:
            return
        parts = []
        if planned:
            each = ", ".join(f"{name} (next at {self._today_or_local(at)})" for name, at in planned)
            which = "1 task" if len(planned) == 1 else f"{len(planned)} tasks"
            parts.append(
                f"{which} had no next run recorded although the schedule has one: {each}. "
                "Planned again from now; runs due while there was none did not happen and "
                "are not in the history."
            )
        if unreadable:
            which = "1 task" if len(unreadable) == 1 else f"{len(unreadable)} tasks"
            parts.append(
                f"{which} with no next run recorded cannot be read: {', '.join(unreadable)}. "
                "They do not run until their rows are corrected (`agentcron doctor` names "
                "what is wrong)."
            )
        text = f"⚠ agentcron on {self._where()} found in its database: " + " ".join(parts)
        self._tell_soon(daemon_message("tasks had no next run", text, "database"))

    def _loop_stalled(self, seconds: float) -> None:
        """Runs on the watchdog's thread while the loop is stuck: the outbox sender lives
        on that loop, so the owner is told directly (and the dead man's switch)."""
        from agentcron.actions.python_action import on_the_loop

        why = f"agentcron's scheduler loop has not ticked for {seconds:.0f}s"
        url = self.config.heartbeat_url if self.config else None
        if url:
            ping_fail_blocking(url, why)
        suspects = on_the_loop()
        if suspects:
            # an `async def` that blocks froze every task; the message said only "an
            # inline call that never yields" (probe)
            cause = (
                f"The async function of {', '.join(suspects)} runs on the daemon's loop: "
                "an `async def` that blocks (time.sleep, a blocking HTTP client) holds "
                "every task until it returns. Await asyncio.sleep or an async client in "
                "it, or make it a plain `def` (run on a thread of its own)."
            )
        else:
            cause = (
                "A run that blocks the daemon (an inline async call that never yields) or "
                "a database call that does not return are the usual causes; restart the "
                "daemon if this does not clear."
            )
        self._tell_directly(
            daemon_message(
                "scheduler stalled",
                f"✖ {why} on {self._where()}: no task starts until it recovers. {cause}",
                "stall",
            )
        )

    def _loop_resumed(self, seconds: float) -> None:
        self._tell_directly(
            daemon_message(
                "scheduler running again",
                f"✔ agentcron's scheduler loop on {self._where()} ticks again after a stall "
                f"of {format_duration(timedelta(seconds=round(seconds)))}. Fires that came "
                "due meanwhile follow each task's catch-up rules.",
                "stall",
                ok=True,
            )
        )

    def _loop_stalled_before(self, seconds: float) -> None:
        """A stall seen only after it ended: the whole process was frozen (SIGSTOP, a
        paused VM, a host that swapped it out), the watchdog's thread with it. Told as
        over, not with the advice for a stall that goes on."""
        lasted = format_duration(timedelta(seconds=round(seconds)))
        self._tell_directly(
            daemon_message(
                "scheduler was stalled",
                f"⚠ agentcron on {self._where()} did not run for {lasted} and runs again: "
                "the whole process was held (stopped with SIGSTOP, a paused or suspended "
                "machine, or one too overloaded to run it). Fires that came due meanwhile "
                "follow each task's catch-up rules.",
                "stall",
                warning=True,
            )
        )

    def _outage_began(self, outage: Outage) -> None:
        self._left_outage = None  # this outage's end tells the owner what an earlier one's would
        where = self.store.describe() if self.store is not None else "the database"
        if outage.database:
            title = "database unavailable"
            what = f"agentcron cannot use its database ({where})"
        else:
            title = "scheduler failing"
            what = "every tick of agentcron's scheduler fails"
        self._tell_soon(
            daemon_message(
                title,
                f"✖ {what} since {self._today_or_local(outage.since)} on {self._where()} "
                f"({outage.failures} failed attempt{'' if outage.failures == 1 else 's'}; "
                f"latest: {redact(outage.error)}). "
                "Nothing is being scheduled. agentcron keeps trying and will tell you when "
                "it works again.",
                "database" if outage.database else "loop",
            )
        )

    def _loop_hold(self, at: datetime) -> Hold | None:
        """The hold of this daemon's loop by an inline async function during which a fire
        due at ``at`` came due (the loop the daemon started on: the engine's)."""
        return holds_of(self._loop).covering(at) if self._loop is not None else None

    def _left_outage_reason(self, at: datetime, zone: ZoneInfo) -> str | None:
        """Why a fire came due unrun before this daemon started, when an earlier daemon
        of this home told the owner of an outage and stopped inside it: the outage, not
        only the stop (outside-in probe: fires due while the old daemon's ticks failed
        on a lock were "missed: agentcron was not scheduling (stopped, or stopping)").
        When it stopped is not known, so both are said."""
        left = self._left_since
        if left is None or not left[0] <= at < self._started_at:
            return None
        since, error, database = left
        local = since.astimezone(zone)
        what = "use its database" if database else "tick"
        return (
            f"agentcron could not {what} from {local:%H:%M:%S} {zone_label(local, zone.key)} "
            f"({error}), and the daemon that told you so stopped before it came back"
        )

    def _tell_left_outage(self, now: datetime) -> None:
        """After a pass that worked: the end of an outage an earlier daemon of this home
        told the owner of and stopped before it could tell its end (see
        :func:`~agentcron.trouble.told_outage_left`), once."""
        left, self._left_outage = self._left_outage, None
        if left is None:
            return
        what = (
            "agentcron's database is available again"
            if left.get("database")
            else "agentcron's scheduler ticks again"
        )
        self._tell_soon(
            daemon_message(
                "database available again" if left.get("database") else "scheduler running again",
                f"✔ {what} on {self._where()}. It could not be used since {left.get('since')} "
                f"({left.get('error')}), as you were told; the daemon that told you, on "
                f"{left.get('where') or 'pid ' + str(left.get('pid'))}, stopped before it "
                f"came back. This one started at {self._today_or_local(self._started_at)} and "
                "uses it; what came due meanwhile is in its report of missed runs, if any.",
                "database" if left.get("database") else "loop",
                ok=True,
            )
        )

    def _outage_ended(self, outage: Outage, now: datetime, report: TickReport) -> None:
        lasted = format_duration(timedelta(seconds=round((now - outage.since).total_seconds())))
        what = (
            "agentcron's database is available again"
            if outage.database
            else ("agentcron's scheduler ticks again")
        )
        peers = self._peers_during(outage)
        tick = "This node's first tick" if peers else "The first tick"
        caught = (
            f"{tick} after it recorded {report.materialized} slot(s) that came due "
            f"meanwhile, following each task's catch-up rules ({report.fresh} started, "
            f"{report.missed} recorded missed, {report.skipped} skipped"
            + (f", {report.waiting} waiting for a free worker" if report.waiting else "")
            + ")."
            if report.materialized
            else "No slot came due meanwhile."
        )
        if peers and not report.materialized:
            # the slots may have been another node's to record: "No slot came due" beside
            # another node's "recorded 13 slot(s)" for the same outage (outside-in probe)
            caught = "This node had no slot to record meanwhile."
        if peers:
            caught += f" Other nodes of this database record their own ({', '.join(peers)})."
        self._tell_soon(
            daemon_message(
                "database available again" if outage.database else "scheduler running again",
                f"✔ {what} on {self._where()} after {lasted} (since "
                f"{self._today_or_local(outage.since)}). {caught}",
                "database" if outage.database else "loop",
                ok=True,
            )
        )

    def _peers_during(self, outage: Outage) -> list[str]:
        """The other nodes of this database that ran when ``outage`` began (their hosts
        and pids): each tells of its own outage and records what came due on its side."""
        if self.store is None:
            return []
        try:
            nodes = self.store.nodes()
        except Exception:  # the message goes out all the same, without the others
            log.exception("could not read the other nodes for the recovery message")
            return []
        since = outage.since - timedelta(seconds=self.options.lease_seconds)
        return [
            f"{node.host} (pid {node.pid})"
            for node in nodes
            if node.node_id != self.node_id
            and node.stopped_at is None
            and node.heartbeat_at >= since
        ]

    async def _part_failed(self, failure: PartFailure) -> None:
        if failure.restart_in is None:
            body = (
                f"✖ agentcron's {failure.part} failed {failure.failures} times in a row on "
                f"{self._where()} (latest: {redact(failure.error)}). The daemon exits so "
                "that its service manager starts it afresh; if it is not run under one "
                "(systemd's Restart=on-failure), start it again."
            )
        else:
            body = (
                f"⚠ agentcron's {failure.part} failed on {self._where()}: "
                f"{redact(failure.error)}. It is restarted in {failure.restart_in:.0f}s; "
                "you will hear when it has run well again."
            )
        message = daemon_message(f"{failure.part} failed", body, "daemon")
        await asyncio.to_thread(self._tell_directly, message)

    async def _part_recovered(self, part: str) -> None:
        message = daemon_message(
            f"{part} running again",
            f"✔ agentcron's {part} has run well since its restart on {self._where()}.",
            "daemon",
            ok=True,
        )
        await asyncio.to_thread(self._tell_directly, message)

    def _database_away(self) -> bool:
        """Whether the scheduler's ticks are failing on the database: the other parts
        then leave it alone (each of their calls would hold the loop for the busy
        timeout) and the loop's own ticks find out when it is back."""
        outage = self.engine.health.outage if self.engine is not None else None
        return outage is not None and outage.database

    def _trouble(self) -> str | None:
        """Why the dead man's switch must not hear "alive", or None while ticks complete."""
        engine = self.engine
        if engine is None:
            return "agentcron is starting"
        if engine.health.outage is not None:
            return f"agentcron's ticks are failing: {redact(engine.health.outage.error)}"
        within = max(3 * self.beat, self.options.stall_after)
        if not engine.health.progressing(time.monotonic(), within):
            return "agentcron's scheduler loop is not ticking"
        return None

    # ---- running -------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop as on SIGTERM (on the daemon's loop: see ``Scheduler.stop``)."""
        self._stop()

    async def _note_stop(self) -> None:
        """However the stop comes (a signal, a program's stop, a part giving up)."""
        await self.stop_event.wait()
        self._stop_began()

    def _stop_began(self) -> datetime:
        """When the stop began (noted once): from then on the outbox sender begins no
        send of a message written before it (see OutboxSender.drain_once); the sends it
        began and a stop cut short were sent again by the next start."""
        sender = getattr(self, "sender", None)
        if sender is None:
            return self.clock.now()
        if sender.stopping_since is None:
            sender.stopping_since = self.clock.now()
        began: datetime = sender.stopping_since
        return began

    def _quit(self) -> None:
        log.warning("SIGQUIT: stopping as on SIGTERM")
        self._stop()

    def _unused_signal(self, sig: signal.Signals) -> None:
        log.warning(
            "%s received: agentcron does not use it, so it is ignored (the daemon logs to "
            "stderr: there is no log file to reopen; SIGHUP reloads the config, SIGTERM "
            "stops)",
            sig.name,
        )

    def _stop(self) -> None:
        """The stop signal: runs that die of the same signal (a service manager that
        signals the whole group) are interruptions, not the tasks' errors."""
        if self.stop_event.is_set():
            log.warning("already stopping; waiting for the runs in progress to end")
            return
        running = self.engine.running if self.engine is not None else 0
        grace = self.options.shutdown_grace
        log.info(
            "stopping: %s",
            f"waiting up to {grace:g}s for {running} run(s) in progress"
            if running
            else "no run in progress",
        )
        if self.engine is not None:
            self.engine.stopping = True
        self._stop_began()
        self.stop_event.set()

    async def run(self) -> int:
        """Run until stopped; the exit code: 0, or non-zero when a part kept failing
        (so systemd's ``Restart=on-failure`` starts a fresh daemon)."""
        # Handlers first: a SIGTERM while starting (systemd stopping a slow start) must
        # still end in a clean stop that records this node as stopped.
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            # operators send SIGHUP to reload: it was ignored without a word (probe)
            self._take_signal(loop, signal.SIGHUP, self._hangup)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            # Signals whose default ends the process at once, without a word or a record
            # (an outside-in probe's SIGUSR1, sent to reopen logs, killed the daemon and
            # its run mid-line): SIGQUIT stops as SIGTERM does, the others are said and
            # ignored.
            # Only where nothing else handles them (a program running a Scheduler may use
            # them), and given back at the end.
            for sig, handler, args in (
                (signal.SIGQUIT, self._quit, ()),
                (signal.SIGUSR1, self._unused_signal, (signal.SIGUSR1,)),
                (signal.SIGUSR2, self._unused_signal, (signal.SIGUSR2,)),
            ):
                if signal.getsignal(sig) is signal.SIG_DFL:
                    self._take_signal(loop, sig, handler, *args)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._take_signal(loop, sig, self._stop)
            except (NotImplementedError, RuntimeError, ValueError):
                if sig is signal.SIGTERM:
                    # Not the main thread (a Scheduler run in a thread of a program):
                    # a SIGTERM ends the process with its runs unrecorded until the
                    # next start finds their leases lapsed. Said once, with the way out.
                    log.warning(
                        "agentcron cannot catch SIGTERM here (it runs in a thread other "
                        "than the main one): call Scheduler.stop() from the program's "
                        "own signal handler, or a stop of the process leaves the runs in "
                        "progress to be recovered as lost at the next start"
                    )
        try:
            await self.start()
        except BaseException:
            # what start made before it failed (the node row, the store, the pool) is
            # closed and the node recorded stopped, not left for the next start to find
            with contextlib.suppress(Exception):
                await self.close()
            self._give_signals_back(loop)
            raise
        assert self.engine is not None
        engine = self.engine
        supervisor = self.supervisor = Supervisor(
            on_failure=self._part_failed,
            on_recovery=self._part_recovered,
            max_failures=self.options.max_part_failures,
            window=self.options.part_failure_window,
            backoff_first=self.options.part_backoff,
        )
        stop = self.stop_event
        noted = asyncio.create_task(self._note_stop())
        self._background.add(noted)
        noted.add_done_callback(self._background.discard)
        supervisor.add("scheduler loop", lambda: engine.run_forever(stop))
        supervisor.add("config watcher", self._reload_loop)
        supervisor.add("node heartbeat", self._heartbeat_loop)
        held = self._database_away
        beat = self.beat
        supervisor.add(
            "outbox sender", lambda: self.sender.run_forever(stop, interval=beat, hold=held)
        )
        supervisor.add(
            "delivery worker", lambda: self.delivery.run_forever(stop, interval=beat, hold=held)
        )
        supervisor.add("retention", self._retention_loop)
        supervisor.add("dead man's switch", self._pulse_loop)
        supervisor.add("watchdog", self._watch_the_watchdog)
        supervisor.add("database upkeep", self._watch_the_store)
        if self.api is not None:
            supervisor.add("http api", lambda: self.api.server.keep_serving(stop, self._tell_api))
        if self.options.tune_gc:  # after the first tick, which the engine task starts with
            loop.call_soon(tune_gc)
        self.watchdog.start()
        self._listen_for_changes()
        log.info(
            "agentcron running as %s (home %s, %s)",
            self.node_id,
            self.options.home,
            self.store.describe() if self.store else "?",
        )
        self._say_untold()
        code = 0
        try:
            code = await supervisor.run(stop)
        finally:
            await self.close()
            self._give_signals_back(loop)
        return code

    def _take_signal(
        self, loop: asyncio.AbstractEventLoop, sig: signal.Signals, handler: Any, *args: Any
    ) -> None:
        """Handle ``sig`` on the loop, keeping what handled it before: a program that
        awaited ``run_async`` found its SIGTERM still taken by the stopped daemon ("already
        stopping …", the process never ended) and its own loop handler gone (probe)."""
        before = getattr(loop, "_signal_handlers", {}).get(sig)  # asyncio keeps them here
        previous = signal.getsignal(sig)
        loop.add_signal_handler(sig, handler, *args)
        self._signals_taken.setdefault(sig, (before, previous))

    def _give_signals_back(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig, (before, previous) in self._signals_taken.items():
            try:
                loop.remove_signal_handler(sig)
                if before is not None:  # the loop's own handler, as it was
                    loop.add_signal_handler(sig, before._callback, *before._args)
                elif previous is not None:  # the process's (asyncio.run's Ctrl-C, say)
                    signal.signal(sig, previous)
            except Exception as exc:  # a closed loop, another thread: the program's to know
                log.warning(
                    "could not give %s back to the program's own handler (%s: %s); it "
                    "keeps its default",
                    sig.name,
                    type(exc).__name__,
                    exc,
                )
        self._signals_taken.clear()

    async def close(self) -> None:
        """Stop in the order that loses nothing: the runs first (each recorded through
        the same finish path as any end, every listener told), then what their ends
        produced is sent, then the store is closed."""
        stop_began = self._stop_began()
        self.stop_event.set()
        changes, self._changes = self._changes, None
        if changes is not None:
            changes.close()
        if self.engine is not None:
            self.engine.stopping = True
            try:
                await self.engine.shutdown(self.options.shutdown_grace)
            except Exception:
                log.exception("stopping the runs failed")
            self._settle_notices()
        if hasattr(self, "delivery"):
            try:  # answers of deliveries under way are recorded before the store closes
                await self.delivery.settle(max(self.options.final_drain, 1.0))
            except Exception:
                log.exception("could not settle the deliveries under way")
        await self._final_drain(stop_began)
        if self._background:
            await asyncio.wait(list(self._background), timeout=self.options.final_drain)
        if self.api is not None:
            await asyncio.to_thread(self.api.server.stop)
        if hasattr(self, "watchdog"):
            self.watchdog.stop()
        if self.registry is not None:
            await self.registry.close()
        if self.store is not None:
            try:
                if self._registered:  # a start that failed before has no node to stop
                    self.store.stop_node(self.node_id, self.clock.now())
            except Exception:
                log.exception("could not record this node as stopped")
            self.store.close()
        # an outage told and not told over: kept for the next start to tell its end
        told = self.engine.outage_told() if self.engine is not None else None
        self._trouble_file.close(keep=told is not None)
        # a start refused (an invalid config, a database it cannot open) never ran: it
        # logged "agentcron stopped" above its "error: cannot start …"
        log.info("agentcron stopped" if self._started else "agentcron did not start")

    async def _final_drain(self, stop_began: datetime) -> None:
        """Send what the stop itself produced (messages written since ``stop_began``;
        a backlog waits for the next start). A send the stop cancelled left its claim
        on its channel's first message, which would hold that channel (this drain's
        messages with it) for minutes: this node's own claims lapse first, and the
        messages count as possibly sent twice, as any lapsed claim does. What cannot be
        sent now stays in the outbox for the next start, and the log says so."""
        if self.options.final_drain <= 0 or not hasattr(self, "sender") or self.store is None:
            return
        owners = [self.node_id, f"{self.node_id}:watchdog"]
        try:
            # This process's own cut sends are handed back untouched: its channel knows
            # of each (an answer that came late counts, one still going is not sent
            # again), so none is "taken over, may arrive twice", as a late OK was
            # counted (outside-in probe). Others' claims (the watchdog's) lapse.
            cut = self.sender.cut_short()
            again = self.store.unclaim_outbox(cut, self.node_id) if cut else 0
            if again + self.store.release_claims(owners, self.clock.now()):
                log.info("the sends this stop cut short are tried again now")
            async with asyncio.timeout(self.options.final_drain):
                await self.sender.drain_once(written_since=stop_began)
        except Exception as exc:
            why = "the channel did not answer in time" if isinstance(exc, TimeoutError) else exc
            log.warning(
                "not every message could be sent before the stop (%s); they stay queued "
                "and are sent when agentcron starts again",
                str(why) or type(exc).__name__,
            )
        finally:
            # A send this drain began and its timeout cut short claimed its channel's
            # first message again: released, or the next start waited out the claim
            # (3 minutes) with nothing sent while `health` called the channel ok (probe).
            try:
                self.store.release_claims(owners, self.clock.now())
            except Exception:
                log.exception("could not release this node's claims on the outbox")
            self._say_what_waits()

    def _say_what_waits(self) -> None:
        """Log the messages the stop leaves in the outbox, per channel: a backlog (one
        the posts-a-minute bound held, say) with the stop's own news behind it stayed
        unsent without a word, for good on a node never started again (probe)."""
        if self.store is None:
            return
        try:
            waiting = [(h.channel_key, h.pending) for h in self.store.channel_health() if h.pending]
        except Exception:
            log.exception("could not read what waits in the outbox")
            return
        for key, pending in waiting:
            log.warning(
                "%d notification(s) still wait for %s: they go out when agentcron runs "
                "again on this database",
                pending,
                key,
                extra={"event": "notify.left_waiting"},
            )

    def _settle_notices(self) -> None:
        """What the notifier still gathers (missed runs, ends it could not work out) is
        written now, for the final drain to send: a stop within the few seconds a report
        waits to settle must not lose it (missed slots are not reported again)."""
        if not hasattr(self, "notifier"):
            return  # stopped before it was made
        now, notifier = self.clock.now(), self.notifier
        duties: list[tuple[str, Callable[[], None]]] = [
            ("ended runs", lambda: notifier.retry_held(now)),
            ("missed runs", lambda: notifier.report_missed(now, settled=True)),
            # not the providers' news: their state is kept in the database, learnt
            # again by whichever node runs next, and news told at a stop may be older
            # than what another node has told since (a refusal after "answering again")
        ]
        for what, duty in duties:
            try:
                duty()
            except Exception:
                log.exception("could not write the notices of %s before stopping", what)
        for f in notifier.held_ends():  # kept in memory only: said here, once, each
            log.error(
                "stopping without telling the end of %s (slot %s, %s at %s): its notice "
                "could not be written; `agentcron runs %s` shows it",
                f.spec.name,
                f.slot.id,
                f.outcome.slot_status.value,
                self._local(f.finished_at),
                f.spec.name,
            )

    # ---- changes made elsewhere ------------------------------------------------------
    _changes: ChangeListener | None = None

    def _listen_for_changes(self) -> None:
        """Hear what other processes announce (a CLI trigger, another node's API), so
        that the beat need not look for it (:mod:`agentcron.store.changes`). Without the
        ear the daemon still sees every change, on its beat."""
        assert self.store is not None
        try:
            changes = self.store.change_listener()
            if changes is not None:
                changes.start(self._heard_change)
        except Exception:
            log.exception(
                "cannot listen for changes made by other processes; they are seen within "
                "one beat (%gs) instead of at once",
                self.beat,
            )
            return
        self._changes = changes

    def _heard_change(self) -> None:
        if self.engine is not None:
            self.engine.wake()
        self.sender.wake()
        self.delivery.wake()

    # ---- duties ------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        """Keep this node's row fresh. A heartbeat that fails while ticks work (a full
        disk lets an idle tick's reads through) is not handed to the supervisor, which
        would end the daemon for a fault restarting cannot mend: it is logged, and said
        in ``daemon.trouble`` (see :meth:`_say_trouble`), where `health` reads it."""
        faults = FaultLog(log, "recording the node heartbeat")
        while not self.stop_event.is_set():
            # while the database is away (the engine's outage) no beat is tried: that is
            # no beat that worked, and saying the heartbeat "works again" then was false
            # (outside-in probe: said 34 s before a lock on the database ended)
            if not self._database_away():
                try:
                    await self._beat()
                except Exception as exc:
                    faults.failed(exc)
                    if self._beat_failing is None and is_database_error(exc):
                        self._beat_failing = (self.clock.now(), redact(describe_error(exc)))
                else:
                    faults.ok()
                    self._beat_failing = None
            await self._sleep_beats(self.options.heartbeat_interval)

    # since when, and why, the heartbeat cannot be written (None while it can)
    _beat_failing: tuple[datetime, str] | None = None

    async def _beat(self) -> None:
        assert self.store is not None
        now = self.clock.now()
        if self.store.heartbeat(self.node_id, now):
            return
        # the row is gone: removed by hand, or pruned as silent while this machine
        # slept for days; without it this daemon looks stopped to every reader
        log.warning("this node's row was missing from the database; registering it again")
        self._check_identity()  # a database dropped and made again lost every row
        self.store.register_node(
            NodeInfo(
                self.node_id, hostname(), os.getpid(), str(self.options.home), self._started_at, now
            )
        )
        self._write_config_note()

    _started_at: datetime
    _registered = False  # this node's row written (at start)
    _started = False  # start() went through: the daemon has run, and stops

    async def _pulse_loop(self) -> None:
        """The dead man's switch: "alive" only while ticks complete, ``/fail`` with the
        reason otherwise. The URL is read from the config on every beat, so a reload
        that adds, changes or removes it applies at once."""
        from agentcron.schedules.zones import resolve_zone

        monitor = HeartbeatMonitor(
            self.store,
            self.clock,
            self._tell_directly,
            where=self._where(),
            zone=resolve_zone(None),
            interval=self.options.pulse_interval,
            hold=self._database_away,
        )
        while not self.stop_event.is_set():
            url = self.config.heartbeat_url if self.config is not None else None
            monitor.zone = resolve_zone(self.config.timezone if self.config else None)
            # each ping's result is recorded; an endpoint that keeps failing is told
            await monitor.beat(url, self._trouble() if url else None)
            await self._sleep_beats(self.options.pulse_interval)

    async def _watch_the_watchdog(self) -> None:
        """The watchdog runs on threads of its own; a thread that died is a failure of
        this part (restarted by the supervisor, which starts the threads again). Checks
        that keep failing while the database works are told (see
        :meth:`_say_watchdog_fault`), as is a log that cannot be written."""
        while not self.stop_event.is_set():
            if not self.watchdog.alive():
                self.watchdog.start()
                raise RuntimeError("the watchdog's thread had stopped")
            self._say_watchdog_fault()
            self._log_fault.check()
            await self._sleep_beats(max(1.0, self.options.watchdog_interval))

    _watchdog_fault_since: datetime | None = None  # told: the checks fail since then
    _watchdog_fault: str | None = None  # and the words of the node's note for it

    def _say_watchdog_fault(self) -> None:
        """Checks of stuck runs, overdue tasks and the loop that have failed for a minute
        while the database works (a row they cannot read) are told once, and their end.
        Its thread caught each failure and went on, so nothing else said that a run
        that hangs or a schedule that stops firing would no longer be told (outside-in
        probe: one bad row, and a traceback a second in the log for as long as it ran).
        During a database outage the outage's own message says it all."""
        fault = self.watchdog.fault()
        told = self._watchdog_fault_since
        if fault is not None and told is None:
            lasted, error = fault
            if lasted < WATCHDOG_FAULT_TOLD_AFTER or self._database_away():
                return
            since = self.clock.now() - timedelta(seconds=lasted)
            self._watchdog_fault_since = since
            said = redact(str(error))  # as a rejected config's error is (it may quote one)
            self._watchdog_fault = (
                f"its watchdog cannot check runs and schedules since "
                f"{self._today_or_local(since)} ({type(error).__name__}: {said[:200]}): "
                "a run that hangs or a task that stops firing is not told"
            )
            self._write_config_note()  # health, doctor, the API and the dashboard say it
            text = (
                f"⚠ agentcron's watchdog on {self._where()} cannot check runs and schedules "
                f"since {self._today_or_local(since)} ({type(error).__name__}: "
                f"{said[:500]}). Runs still start as scheduled, but a run that hangs or "
                "a task that stops firing is not told while this lasts. The daemon's log "
                "has each failure."
            )
            log.error("%s", text)
            self._tell_soon(daemon_message("its watchdog cannot check", text, "watchdog"))
        elif fault is None and told is not None:
            self._watchdog_fault_since = self._watchdog_fault = None
            self._write_config_note()
            lasted_for = format_duration(
                timedelta(seconds=round((self.clock.now() - told).total_seconds()))
            )
            text = (
                f"✔ agentcron's watchdog on {self._where()} checks runs and schedules again "
                f"(it could not from {self._today_or_local(told)}, {lasted_for})."
            )
            log.warning("%s", text)
            self._tell_soon(daemon_message("its watchdog checks again", text, "watchdog", ok=True))

    async def _watch_the_store(self) -> None:
        """The store's own upkeep (SQLite's WAL checkpoint thread) is a part too: one
        that failed is started afresh and its failure reported to the supervisor."""
        assert self.store is not None
        while not self.stop_event.is_set():
            self._keep_locks()
            self._check_database_file()
            if self._changes is not None:
                self._changes.keep()
            fault = self.store.background_fault()
            # with its file gone from its path the thread cannot open it again: the
            # writer checkpoints itself meanwhile, and the owner was told of the file
            if fault is not None and self._file_fault is None:
                self._checkpoints_stopped(fault)
            self._say_trouble()
            self._check_schema()
            await self._sleep_beats(max(1.0, self.options.watchdog_interval))

    _schema_looked = 0.0  # monotonic: when the database's schema version was last read
    _schema_told: int | None = None  # the newer schema the owner was told of

    _database_id: str | None = None  # the database's own id (meta), read at the start

    def _check_identity(self) -> None:
        """The database is still the one the daemon started on (its id in meta). One
        dropped and made again under a running daemon (PostgreSQL, by hand or a restore;
        a CLI command made the schema) held none of its tasks or history: the daemon said
        the database was "available again … No slot came due meanwhile", ran nothing and
        `health` said ✔ (outside-in probe). Told once per change; the daemon applies its
        config file (and its program's tasks) to the new database at once."""
        assert self.store is not None
        if self._database_id is None:
            return
        try:
            now_id = database_identity(self.store)
        except Exception:  # a database away is the loop's to tell (its ticks fail)
            log.debug("could not read the database's id", exc_info=True)
            return
        if now_id == self._database_id:
            return
        self._database_id = now_id
        where = self.store.describe()
        body = (
            f"✖ agentcron on {self._where()}: its database ({where}) is not the one it "
            "started on: it was dropped and made again, or replaced, while the daemon ran. "
            "The tasks, runs and incidents recorded before are not in it (a backup has "
            "them). The daemon has applied its config file to it again, so those tasks run; "
            "tasks added with `agentcron add`, the API or an agent must be added again."
        )
        log.error("%s", body.removeprefix("✖ "))
        self._reapply_tasks()
        # once for the owner, whichever node of several finds it first
        if self.store.swap_meta(REPLACED_TOLD, None, now_id):
            self._tell_soon(daemon_message("its database was replaced", body, "database"))

    def _reapply_tasks(self) -> None:
        """The config file's tasks (and a program's own) written to a database that lost
        them."""
        assert self.service is not None
        if self.config is not None:
            try:
                self._sync_file_tasks(self.config)
            except Exception:
                log.exception("could not apply the config file to the new database")
        if self.options.code_tasks:
            try:
                self.service.upsert_code_tasks(list(self.options.code_tasks.values()))
            except Exception:
                log.exception("could not register the program's tasks in the new database")
        if self.engine is not None:
            self.engine.wake()

    def _check_schema(self) -> None:
        """A newer agentcron may upgrade the database under this daemon (`pip install -U`
        then any command on this machine; a node upgraded elsewhere on PostgreSQL), which
        then goes on with its old code, without a word: told once per newer version, with
        what to do. Read once a minute (one meta row)."""
        assert self.store is not None
        now = time.monotonic()
        if now - self._schema_looked < SCHEMA_LOOK_EVERY:
            return
        self._schema_looked = now
        self._check_identity()
        try:
            said = self.store.get_meta("schema_version")
            version = int(said) if said else None
        except Exception:  # a database away is the loop's to tell (its ticks fail)
            log.debug("could not read the database's schema version", exc_info=True)
            return
        if version is None or version <= SCHEMA_VERSION or version == self._schema_told:
            return
        self._schema_told = version
        from agentcron import __version__

        body = (
            f"⚠ agentcron {__version__} on {self._where()} runs on a database that a newer "
            f"agentcron has upgraded (schema {version}; this version knows {SCHEMA_VERSION}). "
            "Restart it with the new version (the service manager's restart, or however it "
            "is started); until then it schedules as before, without what the new version "
            "changed."
        )
        log.error("%s", body.removeprefix("⚠ "))
        self._tell_soon(
            daemon_message("database upgraded by a newer agentcron", body, "upgrade", warning=True)
        )

    def _say_trouble(self) -> None:
        """Keep ``daemon.trouble`` saying whether the loop can use its database (an
        outage once told), for `health` and `doctor` to read while the database cannot
        hold it (see :mod:`agentcron.trouble`)."""
        # as long as the owner has not been told it is over (the 30 s hold included):
        # `health` must not say "✔ scheduling" between a full disk's passing reads
        outage = self.engine.outage_told() if self.engine is not None else None
        back = self.engine.healing_since() if self.engine is not None else None
        if outage is not None:
            since, error, database = outage.since, redact(outage.error), outage.database
        elif self._beat_failing is not None and (
            self.clock.now() - self._beat_failing[0] >= BEAT_TROUBLE_AFTER
        ):
            (since, error), database = self._beat_failing, True
        else:
            self._trouble_file.say(None)
            return
        said: dict[str, Any] = {
            "pid": os.getpid(),
            "since": self._local(since),
            "since_utc": since.astimezone(UTC).isoformat(),  # for the next daemon's reasons
            "error": error,
            "database": database,
            "told": outage is not None,  # the owner was told: its end must be told too
            "where": self._where(),
        }
        if outage is not None and back is not None:
            said["back_since"] = self._local(back)
        self._trouble_file.say(said)

    _file_fault: str | None = None
    # what an earlier daemon of this home told of its outage and never told was over
    _left_outage: dict[str, Any] | None = None
    # and when it began, its error and whether it was the database (missed slots' reasons)
    _left_since: tuple[datetime, str, bool] | None = None
    _upkeep_in_outage = False  # the checkpoint thread stopped during a told outage

    def _checkpoints_stopped(self, fault: str) -> None:
        """The WAL checkpoint thread stopped. During an outage the owner was told of
        (a full disk stops it too) it is left until the outage is over and then started
        again quietly: one cause, one message. Otherwise it is this part's failure,
        reported to the supervisor (told, and restarted)."""
        assert self.store is not None
        if self.engine is not None and self.engine.outage_told() is not None:
            self._upkeep_in_outage = True
            return
        self.store.start_background_work()
        if self._upkeep_in_outage:
            self._upkeep_in_outage = False
            log.warning("WAL checkpoint thread started again after the outage (%s)", fault)
            return
        raise RuntimeError(f"its WAL checkpoint thread stopped ({fault})")

    _locks_said: str | None = None  # what was last said of the daemon's locks

    def _keep_locks(self) -> None:
        """The home's and the database's daemon locks, taken again when their files were
        removed (the home deleted, a cleaner): with the flock left on a removed file, a
        second daemon started on the same database and ran every task twice, and CLI
        commands saw no daemon (outside-in probe). A second daemon that took a lock's
        place first is told once: two daemons then run on one database."""
        from agentcron.instance_lock import DaemonAlreadyRunning, InstanceLockError, keep_locks

        try:
            keep_locks(self.options.lock, getattr(self.store, "file_id", None))
        except DaemonAlreadyRunning as exc:
            if self._locks_said == "second":
                return
            self._locks_said = "second"
            text = (
                f"✖ agentcron on {self._where()}: its daemon lock was removed while it ran, "
                f"and another daemon took it: {exc} Two daemons now run on this home or its "
                "database, and tasks may run twice: stop one of them."
            )
            log.error("%s", text)
            self._tell_soon(daemon_message("a second daemon runs on its database", text, "daemon"))
        except (InstanceLockError, OSError) as exc:
            said = f"{type(exc).__name__}: {exc}"
            if said != self._locks_said:
                self._locks_said = said
                log.warning("the daemon lock could not be taken again (%s)", said)
        else:
            self._locks_said = None

    def _check_database_file(self) -> None:
        """A database file moved, deleted or replaced under the daemon: it goes on
        writing the file it opened, which no reader of the path sees (`health` and
        the dashboard show another database, or none), and a deleted one is lost at
        its stop. Told once when it happens, and once when the file is back."""
        assert self.store is not None
        fault = self.store.file_fault()
        if fault == self._file_fault:
            return
        before, self._file_fault = self._file_fault, fault
        if fault is not None:
            text = (
                f"✖ agentcron on {self._where()}: {fault}. Put the file back where it was, "
                "or stop the daemon and start it again (on a deleted file, what it recorded "
                "since is lost)."
            )
            log.error("%s", text)
            self._tell_soon(daemon_message("its database file is gone", text, "database"))
        elif before is not None:
            text = f"✔ agentcron on {self._where()}: its database file is back at its path."
            log.warning("%s", text)
            self._tell_soon(daemon_message("its database file is back", text, "database", ok=True))

    async def _retention_loop(self) -> None:
        """History and kept outputs every ``retention_interval``; between two such full
        passes, the outputs of tasks with a short ``keep_outputs`` every tenth of it
        (at least one beat; see :class:`~agentcron.retention.OutputsCadence`)."""
        assert self.store is not None
        cadence = OutputsCadence(self.options.retention_interval, self.beat)
        full_at = float("-inf")  # epoch seconds of the next full pass
        while not self.stop_event.is_set():
            now = self.clock.now()
            epoch = now.timestamp()
            # a full pass when due (or the clock stepped back past the last one)
            full = not full_at - self.options.retention_interval < epoch < full_at
            if full:
                full_at = epoch + self.options.retention_interval
            unremoved: list[str] = []  # files that could not be deleted ("PATH: why")
            if full and self.config is not None:
                try:
                    report = await asyncio.to_thread(
                        prune_history,
                        self.store,
                        self.options.home,
                        now,
                        default_keep_history(self.config.defaults),
                    )
                    unremoved += report.unremoved
                except Exception:
                    log.exception("pruning history failed; trying again later")
            if self.config is not None:
                cadence.configured(self.config.tasks, self.config.defaults)
            try:
                # outputs still waiting to be delivered, and each task's newest
                # success's (context: previous), are kept whatever their age
                keep = await asyncio.to_thread(self.store.outputs_to_keep)
                busy = await asyncio.to_thread(busy_slots, self.store)
                removed = await asyncio.to_thread(
                    prune_outputs,
                    self.options.home,
                    self.store.get_task,
                    keep,
                    epoch,
                    unremoved,
                    walks=cadence.walks(epoch, full),
                    seen=cadence.seen,
                    busy=busy,
                )
                if removed:
                    log.info("pruned %d kept output file(s) past keep_outputs", removed)
            except Exception:
                log.exception("pruning kept outputs failed")
            try:
                self._tell_unremoved(unremoved)
            except Exception:
                log.exception("could not queue the message of files retention left")
            await self._sleep_beats(cadence.every())

    def _tell_unremoved(self, unremoved: list[str]) -> None:
        """Files retention could not delete (a permission, an immutable file): told
        once each, as they stay on disk and a removed run's is never looked at again."""
        fresh = [line for line in unremoved if line not in self._unremoved_told]
        if not fresh:
            return
        if len(self._unremoved_told) > 10_000:
            self._unremoved_told.clear()
        first = fresh[0]
        body = (
            f"⚠ agentcron on {self._where()} could not delete {len(fresh)} output file(s) "
            f"past their retention (keep_history, keep_outputs), e.g. {first}. They stay "
            "on disk and take its space; remove them by hand, or let agentcron's user "
            "delete them."
        )
        log.warning("%s", body)
        self._tell_owner_of_config(
            "agentcron: files left by retention", body, "warning", kind="retention"
        )
        self._unremoved_told.update(fresh)

    async def _sleep_beats(self, interval: float) -> None:
        """Sleep about ``interval`` (never longer), in step with the daemon's beat: the
        duties' timers fall due together and wake the process once (:mod:`..beats`)."""
        await sleep_to_beat(on_beat(interval, self.beat), self.stop_event)

    def _hangup(self) -> None:
        """SIGHUP: the config file is looked at now, not at the watcher's next look
        (it was ignored without a word; operators send it to reload)."""
        if self.options.config_path is None:
            log.info("SIGHUP: this daemon has no config file to reload")
            return
        log.info(
            "SIGHUP: reading %s now (no signal is needed: the file is watched, and a "
            "saved change applies within about %gs)",
            self.options.config_path,
            max(self.options.reload_interval, self.beat) + self.options.config_settle,
        )
        self._hup_pending = True
        self._hup.set()

    def _said_after_hangup(self, applied: bool) -> None:
        """What a SIGHUP's read came to (an applied or rejected file says itself)."""
        path = self.options.config_path
        if applied:
            return
        if self._settling is not None:
            log.info("SIGHUP: %s is being written; it is read once it stands still", path)
        elif self.rejected_config is not None:
            log.info(
                "SIGHUP: %s is still invalid (see the rejection above); the daemon runs "
                "the last good config",
                path,
            )
        else:
            log.info("SIGHUP: %s is unchanged: the config in force is the file's", path)

    async def _reload_loop(self) -> None:
        # a reload that fails on the database is tried again at each look: logged once
        # with its cause, then every few minutes, and not tried while it is known away
        faults = FaultLog(log, "applying the config file")
        while not self.stop_event.is_set():
            # a file seen while it was being written is looked at again as soon as it
            # has stood still for config_settle, not a whole beat later
            settling, self._settling = self._settling, None
            await sleep_to_beat(
                on_beat(self.options.reload_interval, self.beat),
                self.stop_event,
                self._hup,
                sooner=settling,
            )
            self._hup.clear()
            if self.stop_event.is_set():
                return
            if self._database_away():
                continue  # a SIGHUP's read waits for the database (still pending)
            if self._note_unwritten:
                self._write_config_note()
            hangup, self._hup_pending = self._hup_pending, False
            try:
                await self._parse_ahead(force=hangup)
                applied = self.reload_if_changed(force=hangup)
                self._settle_divergence()
            except Exception as exc:
                faults.failed(exc)
            else:
                faults.ok()
                if hangup:
                    self._said_after_hangup(applied)

    # a changed file parsed on a thread: (its content's stamp, the config or its error)
    _parsed: tuple[str, LoadedConfig | ConfigError] | None = None

    async def _parse_ahead(self, force: bool) -> None:
        """Parse a changed config file on a thread, for :meth:`reload_if_changed` to apply:
        a file of 10,000 tasks takes seconds to read, and read on the loop it held every
        run's start that long (100,000 tasks: a stall of minutes). Kept by the content's
        stamp, so only the very content read is applied from it."""
        path = self.options.config_path
        if path is None or self.config is None:
            return
        paths = self._watched(self.config)
        seen = tuple(_file_id(p) for p in paths)
        if seen == self._config_file and not force and not _any_racy(seen):
            return
        stamp = await asyncio.to_thread(_stamps, paths)
        if stamp is None or stamp == self._config_stamp or stamp.startswith("unreadable"):
            return
        try:
            parsed: LoadedConfig | ConfigError = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            parsed = exc
        self._parsed = (stamp, parsed)

    def _load_changed(self, stamp: str | None) -> LoadedConfig:
        """The config file as changed: parsed ahead on a thread when its content is that
        one, else read now."""
        parsed, self._parsed = self._parsed, None
        assert self.options.config_path is not None
        if parsed is None or parsed[0] != stamp:
            return load_config(self.options.config_path)
        if isinstance(parsed[1], ConfigError):
            raise parsed[1]
        return parsed[1]

    _settling: float | None = None  # seconds until a file seen changing stands still
    _hup_pending = False  # a SIGHUP not yet answered by a read of the file

    def reload_if_changed(self, force: bool = False) -> bool:
        """Apply a changed config file; keep the last good one when the new one is invalid.

        The file counts as seen only once what it asks is done (applied, or rejected and
        told): a reload that fails midway (the database locked while its tasks are
        written, a message that cannot be queued) raises, and the next look at the file
        does it all again instead of taking the file for one already applied. ``force``
        (a SIGHUP) compares the file's content even when its size and times are those
        last seen."""
        if self.options.config_path is None:
            return False
        paths = self._watched(self.config)
        seen = tuple(_file_id(p) for p in paths)
        unchanged = seen[0] is not None and seen == self._config_file and not _any_racy(seen)
        if unchanged and not force:
            return False  # the same files, unchanged since they were read: no read, no hash
        settle = self.options.config_settle
        moving = [f for f in seen if f is not None and _changed_within(f, settle)]
        if moving:
            # being written, maybe: read once it stands still (see _reload_loop)
            self._settling = max(_settles_in(f, settle) for f in moving)
            return False
        stamp = _stamps(paths)
        if stamp == self._config_stamp:
            self._config_file = seen
            return False
        try:
            if seen[0] is None and not self.options.config_path.exists():
                # the loader's advice ("run `agentcron init` to create an example") would
                # have the daemon apply the example in place of the owner's tasks
                raise ConfigError(
                    [
                        ConfigProblem(
                            "",
                            f"file not found: {self.options.config_path}; put it back (from "
                            "a backup or version control): until then the daemon runs the "
                            "last good config",
                        )
                    ],
                    str(self.options.config_path),
                )
            config = self._load_changed(stamp)
            self._refuse_clashes(config)
        except ConfigError as exc:
            log.error("config change rejected; still running the last good config:\n%s", exc)
            self.rejected_config = str(exc)
            self._write_config_note()
            self._tell_owner_config_rejected(exc)
            self._rejection_told = True
            self._config_file, self._config_stamp = seen, stamp
            return False
        if self.config is not None and config.digest == self.config.digest:
            if self.rejected_config is not None:  # the file is back to what runs
                self.rejected_config = None
                self._write_config_note()
            self._tell_valid_again(applied=False)
            self._tell_restart_needed()  # one that could not be queued before
            self._config_file, self._config_stamp = seen, stamp
            return False
        self._apply(config)
        self._config_file, self._config_stamp = seen, stamp
        return True

    def _refuse_clashes(self, config: LoadedConfig) -> None:
        """A file task named as a task added with `agentcron add`, the API or an agent
        would take that task over without a word (its pause, its history, an agent's
        task then refused to the agent as "defined in the config file"); the file is
        refused instead, naming both (probe)."""
        assert self.service is not None
        clashes = self.service.tasks_added_elsewhere(list(config.tasks))
        if not clashes:
            return
        raise ConfigError(
            [
                ConfigProblem(
                    f"tasks.{name}",
                    f"a task named {name!r} was added with `agentcron add`, the API or an "
                    "agent, and the file would take it over: give this one another name, or "
                    f"remove that one first (`agentcron remove {name}`)",
                )
                for name in clashes
            ],
            config.source,
        )

    def _apply(self, config: LoadedConfig) -> None:
        """Put a new valid config in force; ``self.config`` becomes it only once its
        tasks are written (a failure before leaves the file to be applied again)."""
        assert self.service is not None and self.engine is not None
        started = self._started_config
        held = held_until_restart(started, config) if started is not None else []
        settings = settings_changed(self.config, config) if self.config is not None else []
        self.service.defaults = Defaults(config.timezone, config.defaults, config.budget_rules())
        if self.api is not None:
            self.api.set_defaults(self.service.defaults)
        self.engine.settings.max_concurrency = config.max_concurrency
        if self.registry is not None:
            self.registry.set_pool_size(config.max_concurrency)
        self.engine.settings.default_zone = config.timezone
        self.notifier.channels = list(config.notify)
        self.notifier.default_zone = config.timezone
        self.budgets.configure(config.budget_rules(), config.timezone)
        added, changed, removed = self._sync_file_tasks(config)
        self.config = config
        self.rejected_config = None
        log.info(
            "config reloaded: %d tasks added, %d changed, %d removed%s",
            len(added),
            len(changed),
            len(removed),
            f"; {', '.join(settings)}" if settings else "",
        )
        before, self.restart_needed = self.restart_needed, sorted(held)
        self._write_config_note()  # before the message: health says it even if that fails
        self.engine.wake()
        if before and not held:
            log.info("config reloaded: %s are as the daemon started with them again", before)
        self._tell_valid_again(applied=True)
        self._tell_restart_needed()
        if started is None or config.notify != self._said_untold_for:
            self._say_untold()

    def _say_untold(self) -> None:
        """Log when tasks' failures would reach no one: no ``notify:`` in the config and
        none of their own; and each llm task whose key variable this daemon's
        environment does not set (its runs will fail, each told). ``validate`` and
        ``doctor`` said it, but most owners watch only the daemon's log (outside-in
        probe: it started and logged failures to itself, without a word that nobody
        would hear them). Said at start and when a reload changes the config's
        channels."""
        config = self.config
        if config is None:
            return
        self._said_untold_for = list(config.notify)
        try:
            added = self.service.untold_added_tasks() if self.service is not None else []
        except Exception as exc:  # the database said it cannot: the file's tasks still count
            log.warning("could not read the added tasks' channels: %s", exc)
            added = []
        words = config.untold_warning(added)
        if words is not None:
            log.warning("%s", words)
        for unset in config.unset_keys(current_environ()):
            log.warning("%s", unset)

    def _others_running(self) -> bool:
        """Whether another node runs on this database now (its heartbeat is fresh)."""
        assert self.store is not None
        now = self.clock.now()
        return any(
            n.node_id != self.node_id and n.alive(now, DAEMON_STALE_AFTER)
            for n in self.store.nodes()
        )

    def _tell_expired_at_read(self) -> None:
        """Hand the one-shots recorded expired when the file was read (their time had
        passed, perhaps while no daemon ran) to the engine's listeners of slots recorded
        without a run: the notifier's report of runs that did not happen tells them."""
        if self.engine is None or not self._expired_at_read:
            return
        expired, self._expired_at_read = self._expired_at_read, []
        for spec, slot in expired:
            log.warning("%s: %s; recorded expired, it will not run", spec.name, slot.reason)
            self.engine.tell_recorded_slot(spec, slot)

    def _sync_file_tasks(self, config: LoadedConfig) -> tuple[list[str], list[str], list[str]]:
        """Make the database's file tasks this file's, and say so when another running
        node applied other tasks (:mod:`agentcron.config.nodes`)."""
        assert self.service is not None and self.store is not None
        source = str(Path(config.source).resolve())
        mine = Applied(
            self.node_id, hostname(), source, tasks_digest(config.tasks), config.timezone
        )
        recorded = self.store.get_meta(FILE_TASKS_KEY)
        before = loads(recorded)
        added, changed, removed, expired = self.service.sync_file_tasks(config.tasks)
        self._expired_at_read += expired
        self._tell_expired_at_read()
        now = self.clock.now()
        other = other_live_node(before, mine, self.store.nodes(), now, DAEMON_STALE_AFTER)
        if other is not None and (added or changed or removed):
            words = divergence_text(other, mine, added, changed, removed)
            log.info(
                "%s (told if %s has not applied the same tasks within %s)",
                words,
                other.host,
                format_duration(timedelta(seconds=self.options.divergence_settle)),
            )
            found = Divergence(words, other, mine, recorded, now)
            self._found_divergence = found
            self.store.set_meta(DIVERGENCE_FOUND_KEY, found.dumps())  # kept across a restart
        if before != mine:
            self.store.set_meta(FILE_TASKS_KEY, mine.dumps())
        self._settle_divergence()
        retired = self.service.retire_channels(list(config.notify))
        if retired:
            log.warning(
                "%d unsent message(s) of notify channels no longer in the config are sent "
                "through the channels it names",
                retired,
            )
        return added, changed, removed

    _divergence: str | None = None  # another node's other tasks, not yet queued to tell
    _found_divergence: Divergence | None = None  # found at an apply, told if it lasts
    _kept_divergence_read = False  # the one kept by this file's daemon before a restart

    def _settle_divergence(self) -> None:
        """Tell a difference with another node's tasks that has lasted (at each apply
        and each look of the reload loop); drop one the other node has since resolved."""
        assert self.store is not None
        found = self._found_divergence
        if not self._kept_divergence_read and self.options.config_path is not None:
            # found by this daemon before a restart inside the settle: still to settle
            # (read once: an idle daemon's beat reads nothing more for this)
            self._kept_divergence_read = True
            kept = loads_divergence(self.store.get_meta(DIVERGENCE_FOUND_KEY))
            source = str(Path(self.options.config_path).resolve())
            if found is None and kept is not None and kept.of_file(hostname(), source):
                found = self._found_divergence = kept
        if found is not None:
            now = self.clock.now()
            verdict = divergence_verdict(
                found,
                loads(self.store.get_meta(FILE_TASKS_KEY)),
                self.store.nodes(),
                now,
                timedelta(seconds=self.options.divergence_settle),
                DAEMON_STALE_AFTER,
            )
            if verdict != "wait":
                self._found_divergence = None
                self.store.set_meta(DIVERGENCE_FOUND_KEY, "")
            if verdict == "drop":
                log.info(
                    "the difference with the tasks %s applied is not told: it applied the "
                    "same tasks since, or tasks of its own again (then it tells), or stopped",
                    found.other.host,
                )
            elif verdict == "tell":
                log.warning("%s", found.words)
                if first_to_tell(self.store, found.before, found.mine, now):
                    self._divergence = found.words
                else:
                    log.info("another node applying the same change tells of it")
        if self._divergence is not None:
            # kept until queued: a failure here is tried again at the next look
            title = "agentcron: nodes run different configs"
            self._tell_owner_of_config(title, self._divergence, "warning")
            self._divergence = None

    _restart_told: list[str] = []  # noqa: RUF012 - replaced, never mutated
    _rejection_told = False  # a "config change rejected" whose end is not told yet

    def _tell_valid_again(self, *, applied: bool) -> None:
        """The end of a rejected change, told once (as every problem's end is)."""
        if not self._rejection_told:
            return
        what = (
            "is valid again and applied"
            if applied
            else "is valid again: it is the config the daemon runs"
        )
        self._tell_owner_of_config(
            "agentcron: config valid again",
            f"✔ {self.options.config_path} {what} (on {self._where()}).",
            "recovery",
        )
        self._rejection_told = False

    def _tell_restart_needed(self) -> None:
        """Tell the owner of sections waiting for a restart, once per change of them;
        a message that cannot be queued is tried again at the next look at the file."""
        if self.restart_needed and self.restart_needed != self._restart_told:
            self._tell_owner_restart_needed(self.restart_needed)
        self._restart_told = self.restart_needed

    rejected_config: str | None = None
    # the config sections that differ from those the daemon started with and apply
    # only when it restarts (compared with the start, so a change undone clears it)
    restart_needed: list[str] = []  # noqa: RUF012 - replaced, never mutated
    _note_unwritten = False  # the last config note could not be written: try again

    def config_note(self) -> str | None:
        """What ``agentcron health`` should say of this node beyond "running": a rejected
        config change, sections waiting for a restart, a watchdog that cannot check;
        None when there is none of them."""
        parts = []
        if self.rejected_config is not None:
            first = redact(self.rejected_config).splitlines()[0][:300]
            parts.append(
                f"the last change to {self.options.config_path} was rejected ({first}); "
                "it runs the last good config"
            )
        if self.restart_needed:
            words = " and ".join(f"`{name}:`" for name in self.restart_needed)
            parts.append(f"{words} changed since it started and apply only at a restart")
        if self._watchdog_fault is not None:
            parts.append(self._watchdog_fault)
        if self._log_fault.note is not None:
            parts.append(self._log_fault.note)
        return "; ".join(parts) or None

    def _write_config_note(self) -> None:
        """Keep :meth:`config_note` on this node's row, where every reader of the
        database sees it. A failed write is logged and tried again at the next look at
        the file: the message sent on the channels already told the owner."""
        if self.store is None:
            return
        try:
            self.store.set_config_note(self.node_id, self.config_note())
            self._note_unwritten = False
        except Exception:
            self._note_unwritten = True
            log.exception("could not record the config's state on this node; trying again")

    def _tell_owner_restart_needed(self, held: list[str]) -> None:
        """A reload applied everything but ``held`` (sections the daemon set up when it
        started: the HTTP API's listener and token, the agents' identities and bounds):
        said in the log and on the channels, so a new token is not believed in force
        while the old one still opens the API."""
        words = " and ".join(f"`{name}:`" for name in held)
        text = (
            f"The new {self.options.config_path} changes {words}, which take effect only "
            "when agentcron restarts; everything else in it is applied. Until then the "
            f"daemon on {self._where()} keeps the {words} it started with. Restart it "
            "(for example `systemctl restart agentcron`) to apply them."
        )
        log.warning("config reloaded, but %s", text)
        self._tell_owner_of_config("agentcron: restart to apply the config", f"✎ {text}", "warning")

    def _tell_owner_config_rejected(self, exc: ConfigError) -> None:
        self._tell_owner_of_config(
            "agentcron: config change rejected",
            f"✖ The new {self.options.config_path} is invalid; agentcron keeps running the "
            f"last good config.\n\n{redact(str(exc))}",
            "failure",
        )

    def _tell_owner_of_config(
        self, title: str, body: str, severity: Severity, *, kind: str = "config"
    ) -> None:
        """A message about the config file (or ``kind``: another condition of the
        daemon's own), through the outbox to every channel."""
        if self.store is None or self.config is None:
            return
        from agentcron.notify.channels import channel_key

        message = Message(
            title=title,
            body=body,
            task="",
            event=kind,
            incident_kind=kind,
            severity=severity,
        )
        # every channel's copy in one transaction: a failure queues none, and the
        # retry at the next look cannot send a copy twice
        queued = [(channel_key(url), url, message) for url in self.config.notify]
        if queued:
            self.store.save_incidents([], queued, self.clock.now())
        sender = getattr(self, "sender", None)  # at start, sent by its first look
        if sender is not None:
            sender.wake()


# the watchdog's checks failing this long, the database working, are told
WATCHDOG_FAULT_TOLD_AFTER = 60.0
# a node silent this long without stopping is told by a running one (watchdog/peers.py)
NODE_LOST_AFTER = 2 * DAEMON_STALE_AFTER

# a heartbeat failing this long while ticks work is said in daemon.trouble
BEAT_TROUBLE_AFTER = timedelta(seconds=15)
SCHEMA_LOOK_EVERY = 60.0  # seconds between reads of the database's schema version


def held_until_restart(old: LoadedConfig, new: LoadedConfig) -> list[str]:
    """The sections of ``new`` that differ from ``old`` and that a reload cannot apply:
    ``api`` (the listener and its token) and ``agents`` (identities, tokens and bounds;
    their budgets are applied with the others)."""
    held = []
    if old.api != new.api:
        held.append("api")
    budgetless = {"clients": {"__all__": {"budget"}}}
    if old.agents.model_dump(exclude=budgetless) != new.agents.model_dump(exclude=budgetless):
        held.append("agents")
    return held


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


_FileId = tuple[int, int, int, int, int]
RACY_NS = 2_000_000_000  # an mtime this recent may hide a second edit in the same tick


def _file_id(path: Path) -> _FileId | None:
    """What ``stat`` says of the file: an edit (in place or by rename) changes it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _changed_within(file: _FileId, seconds: float) -> bool:
    """Whether the file was changed less than ``seconds`` ago (its mtime or ctime)."""
    return time.time_ns() - max(file[3], file[4]) < seconds * 1e9


def _settles_in(file: _FileId, seconds: float) -> float:
    """Seconds until the file has not changed for ``seconds`` (a little past it)."""
    since = (time.time_ns() - max(file[3], file[4])) / 1e9
    return max(0.0, seconds - since) + 0.05


def _any_racy(files: tuple[_FileId | None, ...]) -> bool:
    return any(f is not None and _racy(f) for f in files)


def _stamps(paths: list[Path]) -> str | None:
    """The content hash of the config file, with its env_file's when it has one."""
    first = _stamp(paths[0])
    if first is None or len(paths) == 1:
        return first
    return "+".join([first, *(_stamp(p) or "-" for p in paths[1:])])


def _racy(file: _FileId) -> bool:
    """Whether the file changed so recently that an edit of the same size within the
    same timestamp tick could look unchanged: then its content is hashed anyway (as
    git does with a "racily clean" index entry)."""
    return time.time_ns() - max(file[3], file[4]) < RACY_NS


def _say_unwritable_runs(home: Path) -> None:
    """A launcher that cannot write its run's marker says nothing (the command must
    run all the same): said here once, at start (and by `agentcron doctor`)."""
    from agentcron.home import cannot_write

    folder = home / "runs"
    why = cannot_write(folder) if folder.is_dir() else None
    if why is not None:
        log.error(
            "cannot write run markers in %s (%s): commands still run, but one that ends "
            "while the daemon is down is retried instead of recorded",
            folder,
            why,
        )


def _stamp(path: Path) -> str | None:
    """The file's content hash: an edit within one mtime tick is still seen. What
    cannot be read is stamped by why (missing, a directory, a FIFO…): all of them
    stamped alike, a missing file that became a directory was never looked at again,
    and `health` went on saying "file not found" (outside-in probe)."""
    from agentcron.config.loader import read_config_bytes

    try:
        return hashlib.sha256(read_config_bytes(path)).hexdigest()
    except OSError as exc:
        return f"unreadable: {type(exc).__name__} {exc.errno}"


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def database_identity(store: Store) -> str:
    """The database's own id, made once (a compare-and-set: nodes that start together
    agree on one): what tells the database a daemon started on from one made again
    under it (see Daemon._check_identity)."""
    found = store.get_meta(DATABASE_ID)
    if found is not None:
        return found
    made = uuid.uuid4().hex
    if store.swap_meta(DATABASE_ID, None, made):
        return made
    return store.get_meta(DATABASE_ID) or made


DATABASE_ID = "database_id"
REPLACED_TOLD = "database_replaced_told"  # the id whose replacement a node told
