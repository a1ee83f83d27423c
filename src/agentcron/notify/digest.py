"""Many messages waiting for one channel go out as one post.

A wide outage is one message per task and per transition: 200 tasks failing at once
made 402 messages for one event, and on a channel that takes 20 a minute a new,
unrelated failure waited an hour behind them (outside-in probe). Such a flood teaches
the owner to mute the channel, which is the silence agentcron exists to prevent.

So when :data:`DIGEST_AT` or more messages wait for one channel, the sender sends up to
:data:`DIGEST_MOST` of them as one post (:func:`digest`): a title counting them by kind,
then one line per message (the first line of its body, the whole story in one
sentence), oldest first, as many as fit in the channel's post. Messages alike but for
their task's name (forty tasks refused by one expired key) are one line and "The same
for b, c, …". When not all fit, each task's latest news is listed before what it
replaced (a recovery before the failure it ended), failures first, and a last line
counts the rest by kind and says where to read them. The members are marked sent
together, so a digest is sent once however long the backlog was; fewer messages go out
one by one, as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agentcron.model import Message, OutboxItem, Severity
from agentcron.notify.outbox import stable_key

# Ten or more messages waiting for one channel go out as a digest.
DIGEST_AT = 10
# At most this many in one digest: 1,000 failing tasks are five posts per transition.
DIGEST_MOST = 200
# A digest's body stays within this when its channel does not say how long a post may
# be (below the smallest common post, Telegram's 4,096 characters with its title), and
# within DIGEST_CHARS_MOST when it says more.
DIGEST_CHARS = 3_000
DIGEST_CHARS_MOST = 12_000
LEAST_ROOM = 400  # a channel that says less gets this much all the same
LINE_CHARS = 300  # one line, at most, besides the names of the tasks alike
NAMES_CHARS = 600  # the names of the tasks alike on one line, at most

# the order of the counts, and of the lines shown when not all fit
_RANK: dict[Severity, int] = {"failure": 0, "warning": 1, "recovery": 2, "info": 3}
_NAMES: dict[Severity, tuple[str, str]] = {
    "failure": ("failure", "failures"),
    "warning": ("warning", "warnings"),
    "recovery": ("recovery", "recoveries"),
    "info": ("notice", "notices"),
}
_MORE = "`agentcron incidents` shows every problem in full; `agentcron list` each task's state."
_SIGNS = "✖⚠✔⏸⏰⏳✎ℹ️ "
_NAME = "\x00"  # stands for the task's name in a line's template


def digest(items: Sequence[OutboxItem], room: int | None = None) -> Message:
    """One message standing for ``items`` (oldest first, of one channel). ``room``: the
    longest body the channel posts whole, when it says."""
    if not items:
        raise ValueError("a digest needs at least one message")
    severities = [item.message.severity for item in items]
    budget = DIGEST_CHARS if room is None else max(min(room, DIGEST_CHARS_MOST), LEAST_ROOM)
    head = (
        f"{len(items)} messages were waiting for this channel, so they come in one post "
        "instead of one each. Oldest first:"
    )
    groups = _grouped([item.message for item in items])
    shown = _shown(groups, budget - len(head) - len(_MORE) - 80)
    body = [head, *(groups[i].line() for i in sorted(shown))]
    hidden = [g.severity for i, g in enumerate(groups) if i not in shown for _ in g.tasks]
    if hidden:
        body.append(f"… and {len(hidden)} more ({_counts(hidden)}).")
    body.append(_MORE)
    tasks = {item.message.task for item in items}
    return Message(
        title=f"{len(items)} messages at once: {_counts(severities)}",
        body="\n".join(body),
        task=tasks.pop() if len(tasks) == 1 else "",
        event="digest",
        incident_kind="",
        severity=min(severities, key=_RANK.__getitem__),
    )


def sent_with(error: str, size: int) -> str:
    """``error`` of a digest of ``size`` messages that may have arrived, as kept on its
    first message: the next try, by this process or the next start, sends the same
    members again (the same key), and `health` shows what that error was about."""
    return f"{error} (in one post with {size - 1} more)"


def size_sent_with(error: str | None) -> int | None:
    """The size :func:`sent_with` noted on ``error``, if any."""
    found = _SENT_WITH.search(error or "")
    return int(found.group(1)) + 1 if found else None


_SENT_WITH = re.compile(r" \(in one post with (\d+) more\)$")


def digest_key(items: Sequence[OutboxItem]) -> str:
    """The idempotency key of a digest of ``items``: the same on each send of the same
    members (a retry of the digest), different for any other digest."""
    first, last = items[0], items[-1]
    return stable_key(f"{first.id}-{last.id}", [first.channel_key, [item.id for item in items]])


@dataclass
class _Group:
    """Messages whose line differs only in the task's name ("✖ NAME failed: HTTP 401
    …" for forty tasks): the first one's line, then "The same for" the others."""

    severity: Severity
    template: str  # the line, each mention of the task's name replaced by _NAME
    tasks: list[str] = field(default_factory=list)
    latest: bool = False  # whether it holds some task's latest news in the digest
    place: int = 0  # its place among the digest's lines

    def line(self) -> str:
        first = self.tasks[0]
        text = _cut(self.template.replace(_NAME, first), LINE_CHARS)
        if len(self.tasks) == 1:
            return text
        if not text.endswith((".", "!", "?", "…")):
            text += "."
        others = sorted(self.tasks[1:])  # easier to look for one among many
        named: list[str] = []
        used = 0
        for task in others:
            if named and used + len(task) > NAMES_CHARS:
                break
            named.append(task)
            used += len(task) + 2
        names = ", ".join(named)
        if len(named) < len(others):
            names += f" and {len(others) - len(named)} more"
        return f"{text} The same for {names}."


def _grouped(messages: Sequence[Message]) -> list[_Group]:
    """The lines of ``messages`` in time order, those alike but for the task's name
    as one (placed where its first was)."""
    latest = {m.task: i for i, m in enumerate(messages)}  # each task's last message
    open_groups: dict[tuple[str, bool, str], _Group] = {}
    placed: dict[str, int] = {}  # each task's last line so far, by its place
    out: list[_Group] = []
    for i, message in enumerate(messages):
        line = _line(message)
        name = message.task
        template = _whole_word(name).sub(_NAME, line) if name else line
        # a line that does not name its task (or a task named by no name) stands alone;
        # a task's latest news is not put with news others replaced since (a failure
        # listed beside those that are over would read as still going)
        last = latest.get(name) == i
        key = (message.severity, last, template)
        group = open_groups.get(key) if name and _NAME in template else None
        # nor with a line placed before news of its own task: read oldest first, a
        # failure folded into an earlier line came before the recovery it followed, and
        # a task repeating itself was "the same for" itself (outside-in probe)
        if group is not None and placed.get(name, -1) >= group.place:
            group = None
        if group is None:
            group = _Group(message.severity, template, latest=last, place=len(out))
            out.append(group)
            if name and _NAME in template:
                open_groups[key] = group
        group.tasks.append(name)
        placed[name] = group.place
    return out


def _line(message: Message) -> str:
    """``• `` and the first line of the body: the whole story, naming its task ("✖ story
    failed: HTTP 401 …"); after the title when that line names neither the task nor
    what the title says. A first line that ends in ":" takes the lines after it (the
    report of runs that did not happen lists its tasks there)."""
    lines = [ln.strip() for ln in message.body.splitlines() if ln.strip()]
    title = message.title.strip()
    if not lines:
        return f"• {title}"
    first = lines[0]
    if first.endswith(":") and len(lines) > 1:
        first = first + " " + "; ".join(ln.lstrip("•- ").rstrip(".") for ln in lines[1:4])
        first += "; …" if len(lines) > 4 else "."
    words = first.lstrip(_SIGNS)
    sign = title[: len(title) - len(title.lstrip(_SIGNS))]
    named = message.task and _whole_word(message.task).search(words)
    if named or words.startswith(title.lstrip(_SIGNS)):
        return f"• {sign}{words}"
    return f"• {title}: {words}"


def _cut(text: str, most: int) -> str:
    """``text`` in at most ``most`` characters, cut after a word (with "…")."""
    if len(text) <= most:
        return text
    cut = text.rfind(" ", most // 2, most - 1)
    return text[: cut if cut > 0 else most - 1].rstrip(" ,;:(") + "…"


def _whole_word(name: str) -> re.Pattern[str]:
    """``name`` where it stands alone: not inside a longer name (``a`` in ``a.b`` or
    ``job-1``), but before the full stop that ends a sentence ("… boom error in d07.":
    twelve such failures were listed one per line, none taken as alike; outside-in
    probe)."""
    return re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w-]|\.[\w-])")


def _shown(groups: Sequence[_Group], budget: int) -> set[int]:
    """Which lines fit in ``budget`` characters: each task's latest news before what it
    replaced (a recovery before the failure it ended), failures first, then warnings,
    recoveries and notices, each oldest first; a line too long for what is left is
    passed over for shorter ones. They are then listed in time order."""
    order = sorted(
        range(len(groups)), key=lambda i: (not groups[i].latest, _RANK[groups[i].severity], i)
    )
    shown: set[int] = set()
    used = 0
    for i in order:
        cost = len(groups[i].line()) + 1
        if used + cost <= budget:
            shown.add(i)
            used += cost
    return shown


def _counts(severities: Sequence[Severity]) -> str:
    counts = {s: severities.count(s) for s in _RANK if s in severities}
    return ", ".join(f"{n} {_NAMES[s][n != 1]}" for s, n in counts.items())


def oldest(items: Sequence[OutboxItem]) -> datetime:
    """When the oldest of ``items`` was written (how late a digest goes out)."""
    return min(item.created_at for item in items)
