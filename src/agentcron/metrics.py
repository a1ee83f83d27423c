"""Prometheus metrics at ``/metrics``: counters the engine feeds as runs end, and
gauges read from the database when Prometheus scrapes.

Counters (``_total``) and histograms count what this daemon saw since it started,
as Prometheus counters do; they come from the engine's listeners, so a scrape costs
nothing for them. Gauges are read per scrape from partial indexes only (live rows:
running and waiting slots, open incidents, the unsent outbox, pending deliveries),
never by walking history. Two values are kept rather than read each time: when
each task last succeeded (read once, at the first scrape, then kept up to date by
the listeners) and the count of failed deliveries (no index covers it: read at
most every 30 s).

The task name is the only per-task label. Durations are in seconds, times are
Unix timestamps in seconds. Several daemons on one PostgreSQL database each expose
their own counters; gauges read from the database are the same on every node.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agentcron.engine.health import Outage
from agentcron.model import Finished, Slot, SlotStatus, TaskSpec
from agentcron.model.incident import IncidentKind

if TYPE_CHECKING:
    from agentcron._service.status import Gauges
    from agentcron.engine.engine import Engine
    from agentcron.engine.settings import TickReport

log = logging.getLogger("agentcron.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FAILED_DELIVERIES_EVERY = 30.0  # seconds between counts of failed deliveries
PRUNE_EVERY = 30.0  # seconds between looks for removed tasks' series
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600)


class GaugeSource(Protocol):
    """What the gauges read: the service's cheap status reads."""

    def gauges(self) -> Gauges: ...

    def failed_deliveries(self) -> int: ...

    def last_success_times(self) -> dict[str, datetime]: ...

    def task_names(self) -> list[str]: ...


class Metrics:
    """One daemon's metrics in a registry of their own (not the process-global one,
    so tests and several apps in one process do not share counts)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.slots = Counter(
            "agentcron_slots",
            "Slots (fires) that reached a final status, by task and status",
            ["task", "status"],
            registry=r,
        )
        self.attempts = Counter(
            "agentcron_attempts",
            "Attempts that ended, by task and error class ('none' for a success)",
            ["task", "error_class"],
            registry=r,
        )
        self.lateness = Histogram(
            "agentcron_fire_lateness_seconds",
            "How long after its scheduled time a scheduled run's first attempt started",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "agentcron_run_duration_seconds",
            "How long attempts ran, all tasks",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.task_duration = Summary(
            "agentcron_task_run_duration_seconds",
            "How long attempts ran, by task (count and sum; the histogram has the buckets)",
            ["task"],
            registry=r,
        )
        self.database_errors = Counter(
            "agentcron_database_errors",
            "Database errors: failed scheduler ticks caused by the database (part=scheduler) "
            "and failed reads of the API and of this endpoint (part=api, part=metrics)",
            ["part"],
            registry=r,
        )
        for part in ("scheduler", "api", "metrics"):
            self.database_errors.labels(part=part)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._source: GaugeSource | None = None
        self._last_success: dict[str, float] = {}
        self._pruned = -PRUNE_EVERY  # monotonic time of the last look for removed tasks
        self._seeded = False
        self._failed: tuple[float, int] | None = None  # (monotonic time, count)
        self._health: Callable[[], Outage | None] | None = None
        self._outage: tuple[datetime, int] | None = None  # the outage being counted
        self._render_lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        r.register(_Gauges(self))

    # ---- wiring ------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        """Listen to ``engine``: ended attempts, slots recorded without running, and
        the scheduler's outages (for the database error count)."""
        engine.batch_listeners.append(self.on_finished_many)
        engine.slot_listeners.append(self.on_recorded_slot)
        engine.on_outage.append(self._on_outage)
        engine.on_recovery.append(self._on_recovery)
        self._health = lambda: engine.health.outage

    def bind(self, source: GaugeSource) -> None:
        """Where the gauges are read (the API's service)."""
        self._source = source

    def render(self) -> bytes:
        """The text exposition format, as Prometheus scrapes it. The database is read
        first, so that a failed read is already in the error count it shows."""
        with self._render_lock:
            self._snapshot = self._read()
            return generate_latest(self.registry)

    # ---- listeners ---------------------------------------------------------------
    def on_finished_many(self, ended: Sequence[Finished]) -> None:
        for finished in ended:
            self.on_finished(finished)

    def on_finished(self, finished: Finished) -> None:
        task = finished.spec.name
        outcome = finished.outcome
        error_class = outcome.error_class.value if outcome.error_class else "none"
        self.attempts.labels(task=task, error_class=error_class).inc()
        seconds = max(0.0, (finished.finished_at - finished.started_at).total_seconds())
        self.duration.observe(seconds)
        self.task_duration.labels(task=task).observe(seconds)
        slot = finished.slot
        # catch-up runs too: a daemon that stalled shows as late fires, which is what an
        # alert on this histogram is for (they were left out, and a stall of 82 s kept
        # every observation under 0.1 s); manual runs have no time they were due at
        if finished.attempt == 1 and slot.trigger in ("schedule", "catchup"):
            late = (finished.started_at - slot.scheduled_for).total_seconds()
            self.lateness.observe(max(0.0, late))
        status = outcome.slot_status
        if status.is_final:
            self.slots.labels(task=task, status=status.value).inc()
        if status is SlotStatus.SUCCEEDED:
            with self._lock:
                at = finished.finished_at.timestamp()
                self._last_success[task] = max(at, self._last_success.get(task, 0.0))

    def on_recorded_slot(self, spec: TaskSpec, slot: Slot) -> None:
        if slot.status.is_final:
            self.slots.labels(task=spec.name, status=slot.status.value).inc()

    def database_error(self, part: str) -> None:
        self.database_errors.labels(part=part).inc()

    # ---- the scheduler's database errors -------------------------------------------
    def _on_outage(self, outage: Outage) -> None:
        self._count_outage(outage)

    def _on_recovery(self, outage: Outage, now: datetime, report: TickReport) -> None:
        self._count_outage(outage)
        self._count_outage(None)

    def _count_outage(self, outage: Outage | None) -> None:
        """Add the failed ticks of the outage in progress (sampled at each scrape and
        told at its start and end) to the database error count: each failure once."""
        with self._lock:
            counted = self._outage
            if outage is None or not outage.database:
                self._outage = None
                return
            if counted is not None and counted[0] == outage.since:
                new = outage.failures - counted[1]
            else:
                new = outage.failures
            self._outage = (outage.since, outage.failures)
        if new > 0:
            self.database_errors.labels(part="scheduler").inc(new)

    # ---- gauges ------------------------------------------------------------------
    def _failed_deliveries(self, source: GaugeSource) -> int:
        now = self._monotonic()
        cached = self._failed
        if cached is None or now - cached[0] >= FAILED_DELIVERIES_EVERY:
            cached = self._failed = (now, source.failed_deliveries())
        return cached[1]

    def _last_successes(self, source: GaugeSource) -> dict[str, float]:
        if not self._seeded:
            seed = source.last_success_times()
            with self._lock:
                for task, at in seed.items():
                    ts = at.timestamp()
                    self._last_success[task] = max(ts, self._last_success.get(task, 0.0))
                self._seeded = True
        now = self._monotonic()
        if now - self._pruned >= PRUNE_EVERY:
            # a removed task's series went on until a restart, and an alert on its
            # staleness fired for a task that no longer exists (outside-in probe)
            names = set(source.task_names())
            self._pruned = now
            with self._lock:
                for task in [t for t in self._last_success if t not in names]:
                    del self._last_success[task]
        with self._lock:
            return dict(self._last_success)

    def _read(self) -> _Snapshot | None:
        if self._health is not None:
            self._count_outage(self._health())
        source = self._source
        if source is None:
            return None
        try:
            return _Snapshot(
                source.gauges(), self._failed_deliveries(source), self._last_successes(source)
            )
        except Exception:
            # a scrape during a database outage still gets the counters
            log.warning("metrics: could not read the gauges from the database", exc_info=True)
            self.database_error("metrics")
            return None

    def gauge_families(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        if snapshot is None:
            return
        gauges, failed, successes = snapshot.gauges, snapshot.failed, snapshot.successes
        live = gauges.live
        yield GaugeMetricFamily(
            "agentcron_runs_in_progress", "Runs executing now, on every node", value=live.running
        )
        waiting = GaugeMetricFamily(
            "agentcron_slots_waiting",
            "Slots waiting to run: pending (due) or retrying (waiting for a backoff)",
            labels=["status"],
        )
        for status in ("pending", "retrying"):
            waiting.add_metric([status], live.waiting.get(status, 0))
        yield waiting
        incidents = GaugeMetricFamily(
            "agentcron_open_incidents", "Open incidents by kind", labels=["kind"]
        )
        for kind in IncidentKind:
            incidents.add_metric([kind.value], live.open_incidents.get(kind.value, 0))
        yield incidents
        yield GaugeMetricFamily(
            "agentcron_outbox_backlog",
            "Messages to the owner not sent yet (waiting or being retried)",
            value=live.outbox_backlog,
        )
        oldest = live.outbox_oldest
        yield GaugeMetricFamily(
            "agentcron_outbox_oldest_age_seconds",
            "Age of the oldest message not sent yet (0 when none waits)",
            value=max(0.0, (gauges.now - oldest).total_seconds()) if oldest else 0.0,
        )
        deliveries = GaugeMetricFamily(
            "agentcron_deliveries",
            "Deliveries of outputs: pending, retrying, or failed (given up, still in history)",
            labels=["state"],
        )
        deliveries.add_metric(["pending"], live.deliveries.get("pending", 0))
        deliveries.add_metric(["retrying"], live.deliveries.get("retrying", 0))
        deliveries.add_metric(["failed"], failed)
        yield deliveries
        last = GaugeMetricFamily(
            "agentcron_last_success_timestamp_seconds",
            "When each task's newest successful run finished (Unix time)",
            labels=["task"],
        )
        for task, at in sorted(successes.items()):
            last.add_metric([task], at)
        yield last
        resent = CounterMetricFamily(
            "agentcron_outbox_resent",
            "Messages handed out again after the sender that had them stopped or died "
            "without recording whether they went out: possible duplicates (same "
            "idempotency key)",
            labels=["channel"],
        )
        for channel, count in gauges.resent:
            resent.add_metric([channel], count)
        yield resent
        up = GaugeMetricFamily(
            "agentcron_channel_up",
            "Whether a notify channel takes messages (1) or its last send failed (0): while "
            "it fails, problems do not reach the owner through it",
            labels=["channel"],
        )
        for channel, ok in gauges.channels_ok:
            up.add_metric([channel], 1.0 if ok else 0.0)
        yield up
        cooling = GaugeMetricFamily(
            "agentcron_provider_cooldown_seconds",
            "Seconds until a provider that refused calls may be called again (0: over)",
            labels=["provider"],
        )
        for p in gauges.providers:
            cooling.add_metric([p.name], max(0.0, (p.until - gauges.now).total_seconds()))
        yield cooling
        if gauges.last_tick is not None:
            yield GaugeMetricFamily(
                "agentcron_daemon_last_tick_timestamp_seconds",
                "When a daemon's scheduler last completed a tick (newest of all nodes)",
                value=gauges.last_tick.timestamp(),
            )


@dataclass(frozen=True)
class _Snapshot:
    gauges: Gauges
    failed: int
    successes: dict[str, float]


class _Gauges:
    """The registry's view of :meth:`Metrics.gauge_families`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.gauge_families()

    def describe(self) -> list[Metric]:
        return []  # names vary with what is read; nothing to check at registration
