"""Is agentcron working: daemons and their last ticks, the outbox, channels, and
the live counts ``/metrics`` shows.

A daemon's process can be alive while its scheduler is stuck or failing, so two
facts are kept apart: ``alive`` (a node's heartbeat is recent) and ``scheduling``
(a node's scheduler completed a tick recently, as recorded in the database by
:mod:`agentcron.ticks`). Any process reading the same database sees both, which is
how the API and the dashboard tell "nothing is firing" even when the API runs in
the very daemon that is stuck.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcron._service.advice import Act, Advice, Said
from agentcron._service.base import ServiceCore, iso
from agentcron.durations import format_duration
from agentcron.home import hostname, pid_alive
from agentcron.model import ChannelHealth, ProviderState, TaskSource
from agentcron.model.outbox import may_have_arrived
from agentcron.store._api_sql import LiveCounts

if TYPE_CHECKING:
    from agentcron.instance_lock import Holder

DAEMON_STALE_AFTER = timedelta(
    seconds=float(os.environ.get("AGENTCRON_STALE_AFTER", "30"))
)  # heartbeats come every 6 s; the env knob exists for tests and slow machines


@dataclass(frozen=True)
class Gauges:
    """What ``/metrics`` reads from the database on a scrape (cheap: partial indexes)."""

    live: LiveCounts
    last_tick: datetime | None
    now: datetime
    providers: tuple[ProviderState, ...] = ()
    resent: tuple[tuple[str, int], ...] = ()  # (channel key, messages sent again)
    channels_ok: tuple[tuple[str, bool], ...] = ()  # (channel key, whether it works)


@dataclass(frozen=True)
class Firing:
    """Is anything firing: the daemons as :meth:`StatusMixin.daemon_status` finds them,
    whether one of them ticks, and the sentence that says why nothing fires (None
    while a scheduler ticks) with what to do about it (``advice``: start the daemon,
    said by each interface in its own words)."""

    status: dict[str, Any]
    scheduling: bool
    last_tick: datetime | None
    problem: str | None
    # while it schedules again after an outage whose end is not yet confirmed: that
    # outage in words (`health` says it beside "✔ scheduling"; tasks are not "not firing")
    note: str | None = None
    advice: Advice | None = None


RUN_COMMAND = "`agentcron run`"  # what starts a daemon with no code tasks (the doctor's words)


class StatusMixin(ServiceCore):
    def daemon_status(self) -> dict[str, Any]:
        now = self.clock.now()
        ticks = self.store.last_ticks()
        nodes = []
        alive = False
        holder, trouble = self._trouble()
        pid = holder.pid if holder is not None else None
        rows = self.store.nodes()
        local = None
        if holder is None and not getattr(self.store, "home_locked", True):
            # A home on PostgreSQL holds no lock: its daemon is the node of this machine
            # and home whose process lives, and says its trouble in the same file. Not
            # read, `health` said "no daemon is running; start it" during an outage.
            local = next(
                (
                    n
                    for n in rows
                    if n.host == hostname()
                    and n.home == str(self.home)
                    and n.stopped_at is None
                    and pid_alive(n.pid)
                ),
                None,
            )
            if local is not None:
                pid = local.pid
                trouble = self._said_trouble(local.pid, kept=False)
        for n in rows:
            # A daemon of this home on this machine whose process is gone is dead now,
            # not DAEMON_STALE_AFTER later (the daemon's own restart check is the same).
            here = n.host == hostname() and n.home == str(self.home)
            gone = here and not pid_alive(n.pid)
            # one that says it cannot use the database cannot beat in it either: alive
            troubled = trouble is not None and here and n.pid == pid and n.stopped_at is None
            stale = (
                n.stopped_at is None
                and not troubled
                and (gone or now - n.heartbeat_at > DAEMON_STALE_AFTER)
            )
            running = n.stopped_at is None and not stale
            alive = alive or running
            tick = ticks.get(n.node_id)
            nodes.append(
                {
                    "node_id": n.node_id,
                    "host": n.host,
                    "pid": n.pid,
                    "started_at": iso(n.started_at),
                    "heartbeat_at": iso(n.heartbeat_at),
                    "stopped_at": iso(n.stopped_at),
                    "state": "running" if running else ("stale" if stale else "stopped"),
                    "heartbeat_age_s": _age(now - n.heartbeat_at),
                    "last_tick": iso(tick),
                    "config_note": n.config_note if running else None,
                }
            )
        silent = (holder is not None or local is not None) and not alive and trouble is None
        # starting: it holds the lock but has not registered its node yet (its database
        # being made, migrations run); one that registered and went silent hangs
        registered = any(
            n["pid"] == pid and n["host"] == hostname() and n["stopped_at"] is None for n in nodes
        )
        starting = holder is not None and not registered and holder.starting(within=300)
        return {
            "alive": alive,
            # how to start it, asked only when none runs (one read of the code tasks)
            "start_with": None if alive else self._start_with(),
            # the home's daemon process lives (it holds the lock) but neither beats nor
            # ticks: hung, or stopped (SIGSTOP); "start it" would be refused
            "unresponsive_pid": pid if silent and not starting else None,
            # ... or is still starting (migrations, its tasks written): not yet beating
            "starting_pid": pid if silent and starting else None,
            "nodes": nodes[:10],
            "database": self.store.describe(),
            "trouble": trouble,
        }

    def _not_yet_written(self) -> str:
        """A daemon of this home that is starting has not written its config's tasks
        yet (its database being made, migrations run): a task looked up meanwhile is
        missing for a moment, not for good."""
        status = self.daemon_status()
        pid = status["starting_pid"]
        if status["alive"] or pid is None:
            return ""
        return (
            f"; the daemon (pid {pid}) is starting and may not have written its config's "
            "tasks yet: try again in a moment"
        )

    def _trouble(self) -> tuple[Holder | None, dict[str, Any] | None]:
        """The home's running daemon (the lock's holder) and the trouble it says it has
        outside the database (see :mod:`agentcron.trouble`), or None."""
        from agentcron.instance_lock import daemon_on_database, running_daemon

        holder = running_daemon(self.home)
        if holder is None:
            # a daemon of another home on this SQLite file (`--db`): a frozen one was
            # "no daemon is running; start it", which its lock refuses (probe)
            path = getattr(self.store, "path", None)
            if isinstance(path, str) and path != ":memory:" and not path.startswith("file:"):
                holder = daemon_on_database(Path(path).resolve())
        if holder is None:
            return None, None
        home = Path(holder.home) if holder.home else self.home
        # the file is made first thing at start: missing past that, it is worth a word
        kept = not holder.starting(within=10)
        return holder, self._said_trouble(holder.pid, kept=kept, home=home)

    def _said_trouble(
        self, pid: int | None, *, kept: bool, home: Path | None = None
    ) -> dict[str, Any] | None:
        """What the daemon ``pid`` of this home (or ``home``) says it cannot do (its
        trouble file)."""
        from agentcron.trouble import read_trouble

        trouble = read_trouble(home or self.home, pid, kept=kept)
        return {**trouble, "words": trouble_words(trouble)} if trouble is not None else None

    def _start_with(self) -> str:
        """What starts this home's daemon: `agentcron run`, or, when tasks were
        registered from Python code, the program that registers them (`agentcron
        run` has no function to call for them: every run of theirs would fail)."""
        code = self.store.task_names(TaskSource.CODE.value)
        if not code:
            return RUN_COMMAND
        names = ", ".join(code[:3]) + (" …" if len(code) > 3 else "")
        return (
            f"the program that runs its `agentcron.Scheduler` ({len(code)} task(s) are "
            f"registered from Python code: {names}; `agentcron run` cannot call them)"
        )

    def firing(self) -> Firing:
        """Whether a scheduler ticks, and if not, why nothing fires: what every task
        view reads before it calls a task ``ok`` (a task is not fine while nothing
        can fire it)."""
        now = self.clock.now()
        status = self.daemon_status()
        live_nodes = {n["node_id"] for n in status["nodes"] if n["state"] == "running"}
        ticks = self.store.last_ticks()
        last_tick = max(ticks.values(), default=None)
        live_ticks = [t for node, t in ticks.items() if node in live_nodes]
        newest_live = max(live_ticks, default=None)
        trouble = status["trouble"]
        # back from an outage, its end held until the database takes writes: its ticks
        # (recorded, so they write) count, and `list` said "not firing" meanwhile
        back = trouble is not None and bool(trouble.get("back_since"))
        scheduling = (
            (trouble is None or back)
            and newest_live is not None
            and now - newest_live <= DAEMON_STALE_AFTER
        )
        if scheduling:
            return Firing(status, True, last_tick, None, trouble_words(trouble))
        words = trouble_words(trouble)
        said = (
            Said(words)
            if words
            else _problem(
                status["alive"],
                scheduling,
                last_tick,
                now,
                status["unresponsive_pid"],
                status["starting_pid"],
                status["start_with"],
            )
        )
        if said is None:  # pragma: no cover - not scheduling always has a sentence
            return Firing(status, scheduling, last_tick, None)
        return Firing(status, scheduling, last_tick, said.text, advice=said.advice)

    def health(self) -> dict[str, Any]:
        """Daemon liveness and last tick, nodes, outbox backlog, channel health: the
        answer to "is anything firing, and will I hear about it"."""
        now = self.clock.now()
        firing = self.firing()
        status, last_tick = firing.status, firing.last_tick
        live = self.store.live_counts()
        oldest = live.outbox_oldest
        return {
            "alive": status["alive"],
            "scheduling": firing.scheduling,
            "last_tick": iso(last_tick),
            "last_tick_age_s": _age(now - last_tick) if last_tick is not None else None,
            "problem": firing.problem or firing.note,
            "advice": firing.advice.as_dict() if firing.advice else None,
            "nodes": status["nodes"],
            "database": status["database"],
            "runs_in_progress": live.running,
            "outbox": {
                "backlog": live.outbox_backlog,
                "oldest_at": iso(oldest),
                "oldest_age_s": round((now - oldest).total_seconds(), 1) if oldest else None,
            },
            "open_incidents": sum(live.open_incidents.values()),
            "channels": self.channel_health(),
            "providers": self.providers(),
        }

    def providers(self) -> list[dict[str, Any]]:
        """Providers with a back-off on record: cooling down (their tasks wait), being
        tried by one run, or just over (see agentcron.model.provider)."""
        now = self.clock.now()
        out = []
        for p in self.store.providers():
            state = "cooling" if p.cooling(now) else "probing" if p.probing(now) else "over"
            out.append(
                {
                    "name": p.name,
                    "state": state,
                    "until": iso(p.until),
                    "since": iso(p.since),
                    "reason": p.reason,
                    "seconds_left": max(0.0, round((p.until - now).total_seconds(), 1)),
                }
            )
        return out

    def heartbeat_endpoint(self) -> dict[str, Any] | None:
        """The dead man's switch as the daemon last found it (doctor, API)."""
        from agentcron.watchdog.endpoint import endpoint_status

        return endpoint_status(self.store)

    def gauges(self) -> Gauges:
        ticks = self.store.last_ticks()
        channels = self.store.channel_health()
        now = self.clock.now()
        return Gauges(
            self.store.live_counts(),
            max(ticks.values(), default=None),
            now,
            tuple(self.store.providers()),
            tuple((h.channel_key, h.resent) for h in channels),
            # a channel whose queue nothing moves does not work either (see held_words)
            tuple(
                (h.channel_key, works(h, now) and held_words(h, now, str) is None) for h in channels
            ),
        )

    def failed_deliveries(self) -> int:
        return self.store.failed_deliveries()

    def last_success_times(self) -> dict[str, datetime]:
        return self.store.last_success_times()

    def task_names(self) -> list[str]:
        return self.store.task_names()

    def channel_health(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        out = []
        live: set[str] | None = None  # the nodes whose sender may be sending: read if needed
        for h in self.store.channel_health():
            if live is None and h.head_claim is not None and h.head_claim[1] > now:
                live = self._sending_nodes(now)
            held = held_words(h, now, self._local_clock, live or set())
            out.append(
                {
                    "channel": h.channel_key,
                    "ok": works(h, now) and held is None,
                    "pending": h.pending,
                    "last_ok_at": iso(h.last_ok_at),
                    "last_error": h.last_error,
                    "held": held,
                    "last_error_at": iso(h.last_error_at),
                    "failing_since": iso(h.failing_since),
                    "broken": h.broken,
                    "undeliverable": h.undeliverable,
                    "resent": h.resent,
                }
            )
        return out

    def _sending_nodes(self, now: datetime) -> set[str]:
        """The nodes that may be sending now: not stopped, beating, and on this
        machine still alive (a claim of a node killed with -9 holds its channel until
        it lapses, which no send of its will end)."""
        host = hostname()
        return {
            n.node_id
            for n in self.store.nodes()
            if n.stopped_at is None
            and now - n.heartbeat_at <= DAEMON_STALE_AFTER
            and (n.host != host or pid_alive(n.pid))
        }

    def _local_clock(self, when: datetime) -> str:
        """``17:37:25 UTC``: a time as the owner's zone shows it, with the zone."""
        local = when.astimezone(self._zone_named(None))
        return f"{local:%H:%M:%S} {local.tzname()}"

    def doctor_checks(self) -> list[dict[str, str]]:
        """Channel and delivery checks for `agentcron doctor`."""
        checks = []
        for h in self.channel_health():
            if h["broken"]:
                checks.append(
                    {
                        "name": f"channel {h['channel']}",
                        "status": "fail",
                        "message": f"unusable: {h['last_error']} "
                        f"({h['undeliverable']} message(s) could not be sent)",
                    }
                )
            elif h["held"]:
                checks.append(
                    {"name": f"channel {h['channel']}", "status": "fail", "message": h["held"]}
                )
            elif not h["ok"]:
                checks.append(
                    {
                        "name": f"channel {h['channel']}",
                        "status": "fail",
                        "message": f"failing since {h['failing_since']}: {h['last_error']}"
                        f"; {h['pending']} message(s) waiting, "
                        + (
                            "they will be retried"
                            if self.daemon_status()["alive"]
                            else "retried once a daemon runs (none does now)"
                        ),
                    }
                )
            else:
                checks.append(
                    {
                        "name": f"channel {h['channel']}",
                        "status": "ok",
                        "message": f"last sent {h['last_ok_at'] or 'never'}, "
                        f"{h['pending']} waiting",
                    }
                )
        checks.extend(
            {
                "name": f"provider {p['name']}",
                "status": "warn",
                "message": f"{p['state']} until {p['until']}: {p['reason']}; its tasks wait "
                "without spending retries",
            }
            for p in self.providers()
            if p["state"] != "over"
        )
        failed = [d for d in self.store.deliveries(limit=200) if d.status.value == "failed"]
        if failed:
            checks.append(
                {
                    "name": "deliveries",
                    "status": "warn",
                    "message": f"{len(failed)} output(s) could not be delivered, e.g. "
                    f"{failed[0].task} to {failed[0].target_key}: {failed[0].last_error}",
                }
            )
        held = self._deliveries_held()
        if held is not None:
            checks.append(held)
        open_incidents = self.store.incidents(open_only=True, limit=INCIDENTS_COUNTED)
        if open_incidents:
            said = [f"{i.task}: {i.kind.value} ({i.summary})" for i in open_incidents[:5]]
            more = len(open_incidents) - len(said)
            if more:  # 1,001 open read as the five named (outside-in probe)
                many = "or more " if len(open_incidents) >= INCIDENTS_COUNTED else ""
                said.append(f"and {more:,} {many}more open (`agentcron incidents`)")
            checks.append({"name": "incidents", "status": "warn", "message": "; ".join(said)})
        return checks

    def _deliveries_held(self) -> dict[str, str] | None:
        """The outputs still waiting to be delivered after a failed attempt, or while no
        daemon runs to deliver them: doctor named only the given-up ones, and 225 held
        outputs showed as one incident line (outside-in probe)."""
        waiting, retrying, oldest = self.store.deliveries_held()
        alive = bool(waiting) and self.daemon_status()["alive"]
        if not waiting or (alive and not retrying):
            return None
        since = f", the oldest since {self._local_clock(oldest)}" if oldest else ""
        tried = f", {retrying} of them after a failed attempt" if retrying else ""
        then = "they are tried again" if alive else "delivered once a daemon runs (none does now)"
        return {
            "name": "deliveries waiting",
            "status": "warn",
            "message": f"{waiting} output(s) wait to be delivered{tried}{since}; {then}",
        }


HELD_AFTER = timedelta(minutes=2)  # a working channel sends within seconds
INCIDENTS_COUNTED = 10_000  # open incidents doctor counts before it says "or more"


def works(h: ChannelHealth, now: datetime) -> bool:
    """Whether a channel counts as taking messages: it has not failed since it last did,
    or its only trouble for under :data:`HELD_AFTER` is a send with no answer in time,
    which the service may have taken all the same. One slow answer to a digest the
    service did take had `health` say "✖ 1 channel cannot take messages" (outside-in
    probe); a channel that stays unanswered is counted failing after that."""
    if h.ok:
        return True
    since = h.failing_since
    return (
        not h.broken
        and may_have_arrived(h.last_error)
        and since is not None
        and now - since < HELD_AFTER
    )


def held_words(
    h: ChannelHealth,
    now: datetime,
    local: Callable[[datetime], str],
    sending: set[str] | None = None,
) -> str | None:
    """Why a channel that has not failed still sends nothing, when its oldest message
    has waited past :data:`HELD_AFTER` (None otherwise): `health` said "ok" while a
    claim left by a stop held its queue for three minutes (outside-in probe).
    ``sending``: the nodes that may be sending (None: not known)."""
    if not h.ok or h.waiting_since is None or now - h.waiting_since < HELD_AFTER:
        return None
    waited = format_duration(timedelta(seconds=round((now - h.waiting_since).total_seconds())))
    if h.last_ok_at is not None and h.last_ok_at >= h.waiting_since:
        # sends go through, slower than messages come (a service refusing some with
        # 429, the posts a minute): "none sent: no daemon is sending them" was said of
        # a daemon sending one every 12 s (outside-in probe)
        return (
            f"{h.pending} message(s) waiting, the oldest for {waited}: they go out slower "
            f"than they come (the last went out at {local(h.last_ok_at)})"
        )
    said = f"{h.pending} message(s) waiting for {waited}, none sent"
    if h.head_claim is not None and h.head_claim[1] > now:
        owner, until = h.head_claim
        node = owner.removesuffix(":watchdog")
        if sending is not None and node not in sending:
            return (
                f"{said}: {node}, which no longer runs, left a claim on the first one "
                f"that holds the channel until {local(until)}, when it lapses"
            )
        return (
            f"{said}: a send by {owner} that has not ended holds the channel until "
            f"{local(until)} (the others wait behind it)"
        )
    return f"{said}: no daemon is sending them (is one running, and its sender working?)"


def _age(delta: timedelta) -> float:
    """Seconds ago, never below 0 (another machine's clock may run ahead): not -0.0."""
    return round(max(0.0, delta.total_seconds()), 1)


def home_daemon_trouble(home: Path) -> str | None:
    """What this home's running daemon says it cannot do, read outside the database:
    for a command that cannot open it (a PostgreSQL server away said only "cannot
    connect", while the daemon said since when it had waited: outside-in probe)."""
    from agentcron.instance_lock import running_daemon
    from agentcron.trouble import read_trouble, trouble_of_live_writer

    holder = running_daemon(home)
    if holder is None:  # no lock on PostgreSQL: the file's own writer, if it lives
        return trouble_words(trouble_of_live_writer(home))
    kept = not holder.starting(within=10)
    return trouble_words(read_trouble(Path(holder.home or home), holder.pid, kept=kept))


def trouble_words(trouble: dict[str, Any] | None) -> str | None:
    """The sentence for a daemon that says it cannot use its database (or tick)."""
    if trouble is None:
        return None
    what = "cannot use its database" if trouble.get("database") else "cannot tick"
    back = trouble.get("back_since")
    if back:
        # ticks work again, the end not yet told: runs fire meanwhile, and "nothing is
        # being scheduled" was false for the whole hold (outside-in probe)
        was = "could not use its database" if trouble.get("database") else "could not tick"
        return (
            f"the daemon (pid {trouble.get('pid', '?')}) {was} from {trouble.get('since', '?')} "
            f"({trouble.get('error', 'no reason recorded')}) and schedules again since {back}; "
            "it makes sure the database takes writes again before it says the outage is over"
        )
    return (
        f"the daemon (pid {trouble.get('pid', '?')}) is running but {what} since "
        f"{trouble.get('since', '?')} ({trouble.get('error', 'no reason recorded')}): nothing "
        "is being scheduled; it goes on by itself once it can"
    )


def _problem(
    alive: bool,
    scheduling: bool,
    last_tick: datetime | None,
    now: datetime,
    unresponsive: int | None = None,
    starting: int | None = None,
    start_with: str | None = None,
) -> Said | None:
    """One sentence when nothing is firing (None while a scheduler ticks);
    ``unresponsive``: the pid of this home's daemon, alive but silent; ``start_with``:
    what starts it (see ``StatusMixin._start_with``). Started by `agentcron run`, the
    daemon's start is advice, which each interface words: the command is the CLI's;
    the program that registers code tasks is said as it is, to anyone."""
    from agentcron.durations import format_duration

    if scheduling:
        return None
    if last_tick is None:
        ago = "no scheduler has ticked yet"
    else:
        quiet = timedelta(seconds=round((now - last_tick).total_seconds()))
        ago = f"the last tick was {format_duration(quiet)} ago"
    if alive:
        return Said(
            f"a daemon is running but its scheduler is not ticking ({ago}): nothing is firing"
        )
    if starting is not None:
        return Said(
            f"the daemon (pid {starting}) is starting ({ago}): nothing fires until it ticks"
        )
    program = None if start_with in (None, RUN_COMMAND) else start_with
    start = Advice(Act.START_DAEMON) if program is None else None
    if unresponsive is not None:
        return Said(
            f"the daemon (pid {unresponsive}) is running but not answering ({ago}): it "
            "hangs or is stopped (SIGSTOP); nothing is firing. Send it SIGCONT, or stop it "
            f"and start {program or 'it'} again",
            start,
        )
    if program is not None:
        return Said(f"no daemon is running ({ago}): nothing is firing; start it with {program}")
    return Said(f"no daemon is running ({ago}): nothing is firing", start)
