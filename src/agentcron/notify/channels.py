"""Where messages go: Apprise URLs and the owner's own script.

Our interface is deliberately smaller than Apprise's: one target per channel, one
``send`` that never raises and never blocks the event loop, and a verdict that
says whether trying again can help (``permanent``). The outbox relies on all
three: it retries passing failures with backoff, parks permanent ones where
``doctor`` shows them, and keeps running while a chat platform hangs.

Channel URLs:

* any Apprise URL (``tgram://TOKEN/CHAT``, ``json://host/hook``, ``mailto://…``);
* ``command:PROGRAM ARG…``: runs the owner's script (say their existing
  ``send_message.sh``) with the message as JSON on stdin:
  ``{"title", "body", "task", "event", "severity", "incident_kind"}``. The text
  after ``command:`` is split like a shell line (quotes group words) but no
  shell runs it. Exit status 0 means delivered; anything else is a passing
  failure reported with the tail of stderr; it is killed after 30 s. Stdin is a
  file written in full before the script starts, never a pipe we feed while it
  runs: the script runs in its own session and outlives a daemon killed mid-send,
  and from a pipe it would then read a cut-off or empty message and send that.

A message whose body is blank is refused by every channel (a permanent failure
with a reason): an empty notice says nothing and hides whatever went wrong.

Idempotency keys: the outbox sender passes each message's
:func:`~agentcron.notify.outbox.idempotency_key` to channels that can carry one
(:class:`KeyedChannel`), the same on every send of one outbox row, so a receiver
can drop the resend that follows a crash between its answer and our record of it
(the delivery worker does the same with each delivery of an output).
``json://``, ``xml://`` and ``form://`` (and their ``s`` forms) send it as an
``Idempotency-Key`` HTTP header, unless the URL sets that header itself (``+Idempotency-Key=…``)
or the message is long enough for Apprise to split it into several posts (one key on
every part would make a receiver drop all but the first; a delivered output is split
here instead, by :func:`message_parts`, each part with a key of its own); a ``command:`` script gets
it as ``AGENTCRON_IDEMPOTENCY_KEY`` in its environment. The other Apprise
services (chat platforms, e-mail) have no such field, so a resend shows up there.

A URL may hold ``${NAME}`` placeholders (``tgram://${TELEGRAM_BOT_TOKEN}/12345``):
:func:`channel_for` expands them when it builds the channel, from the environment
and the config's env file, so the outbox row and everything shown keep the
placeholder. A variable that is not set makes a channel whose sends fail
permanently and say which variable is missing.

A channel's ``key`` is its stable, secret-free name (``tgram://1...w/12345678``,
``command:/usr/local/bin/send_message.sh``): it groups the outbox per channel and
is what people see. Two URLs that differ only in secrets or query options share
a key; each message still goes to its own URL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import os
import shlex
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol, TypeVar, cast, runtime_checkable
from urllib.parse import parse_qs, urlsplit

import apprise
from apprise import NotifyFormat, NotifyType, OverflowMode
from apprise.plugins import N_MGR
from apprise.plugins.custom_form import NotifyForm
from apprise.plugins.custom_json import NotifyJSON
from apprise.plugins.custom_xml import NotifyXML
from apprise.result import AppriseResultStatus

from agentcron.classify.resources import out_of_resources, send_words
from agentcron.config._env import (
    MissingVariableError,
    PlaceholderError,
    current_environ,
    expand,
    has_placeholder,
)
from agentcron.model import Message
from agentcron.model.outbox import STILL_SENDING as STILL_SENDING
from agentcron.model.outbox import UNANSWERED as UNANSWERED
from agentcron.model.outbox import may_have_arrived as may_have_arrived
from agentcron.redact import redact

# STILL_SENDING, UNANSWERED and may_have_arrived (the words of a send that may have been
# taken all the same) live in the model, so the CLI's status reads need no Apprise; they
# are said from here for the senders.
COMMAND_PREFIX = "command:"
DEFAULT_TIMEOUT = 30.0
# How much longer than Apprise's own deadline we wait for its thread to return.
_GRACE = 5.0
_STDERR_LINES = 5
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_ENV = "AGENTCRON_IDEMPOTENCY_KEY"
# Apprise plugins that post to the owner's own endpoint and send ``self.headers``.
_HEADER_PLUGINS = (NotifyJSON, NotifyXML, NotifyForm)
# Room left for what Apprise adds before it decides whether a body must be split.
_SPLIT_MARGIN = 256
EMPTY_MESSAGE = "refused to send a message with an empty body"
_GIVEN_UP_KEPT = 100  # sends given up on, remembered per channel
# The longest a channel is waited for after sends that got no answer in time (the
# outbox sender's own limit, SEND_LIMIT, is above it, with the grace).
MAX_PATIENCE = 100.0
# What a send that got no answer in time is said to be: the service may have taken it.


def unanswered(seconds: float) -> str:
    """The error of a send that had no answer within ``seconds``."""
    return f"{UNANSWERED} {seconds:g}s: the service may have taken the message all the same"


_NOTIFY_TYPES = {
    "warning": NotifyType.WARNING,
    "failure": NotifyType.FAILURE,
    "recovery": NotifyType.SUCCESS,
    "info": NotifyType.INFO,
}

T = TypeVar("T")


@dataclass(frozen=True)
class SendResult:
    """``permanent`` means the same message to the same URL can never succeed."""

    ok: bool
    permanent: bool = False
    error: str | None = None
    # the answer of an earlier send of the same message (one we stopped waiting for),
    # not of a new post: it cannot have made a second copy
    earlier: bool = False


class Channel(Protocol):
    key: str

    async def send(self, msg: Message) -> SendResult:
        """Deliver ``msg`` once. Never raises for a delivery problem and returns
        within the channel's timeout; errors in the result contain no secrets."""
        ...


@runtime_checkable
class KeyedChannel(Channel, Protocol):
    """A channel that can pass an idempotency key on to the receiver."""

    async def send_keyed(self, msg: Message, idempotency_key: str | None) -> SendResult:
        """:meth:`Channel.send`, carrying ``idempotency_key`` where the target allows."""
        ...


def _empty(msg: Message) -> bool:
    return not msg.body.strip()


@runtime_checkable
class SplitChannel(Channel, Protocol):
    """A channel whose service takes bodies up to a length (see :func:`message_parts`)."""

    def part_room(self, msg: Message) -> int | None: ...


@runtime_checkable
class SizedChannel(Channel, Protocol):
    """A channel that can say how long a body its service posts whole (a digest of many
    messages is made to fit: :mod:`agentcron.notify.digest`)."""

    def post_room(self, msg: Message) -> int | None: ...


class InvalidChannel:
    """A URL nothing can send to: every send fails permanently, and says why."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason

    async def send(self, msg: Message) -> SendResult:
        return SendResult(ok=False, permanent=True, error=self.reason)


class AppriseChannel:
    """One Apprise URL. Bodies longer than the service allows are split by Apprise
    (unless the URL sets its own ``overflow=``), never rejected."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._url = url
        self._timeout = self._base_timeout = timeout
        self._secrets = _url_secrets(url)
        plugin = _instantiate(url)
        self.key = _apprise_key(url, plugin)
        # what a post may hold, read once: Apprise builds a plugin (and, in its secret
        # scan of the URL, a class: cyclic garbage, seen in a memory soak) per parse
        self._limits = _limits_of(plugin)
        # Sends we stopped waiting for (past the deadline, or cut short by a stop) whose
        # thread still runs, by idempotency key: Apprise may yet deliver them.
        self._given_up: dict[str, concurrent.futures.Future[SendResult]] = {}

    async def send(self, msg: Message) -> SendResult:
        return await self.send_keyed(msg, None)

    async def send_keyed(self, msg: Message, idempotency_key: str | None) -> SendResult:
        if _empty(msg):
            return SendResult(ok=False, permanent=True, error=EMPTY_MESSAGE)
        if idempotency_key is not None:
            earlier = self._earlier_send(idempotency_key)
            if earlier is not None:
                return earlier
        began = time.monotonic()
        result = await self._send_once(msg, idempotency_key)
        if result.error is not None and result.error.startswith(UNANSWERED):
            # A service that answers later than we wait took the message each time and
            # never had it counted: a webhook answering in 25 s got the first message
            # every 90 s for ever, the others never (outside-in probe). It is waited
            # for longer from now on, up to MAX_PATIENCE.
            self._timeout = min(self._timeout * 2, MAX_PATIENCE)
        elif result.ok and time.monotonic() - began < self._timeout / 4:
            # quick again: one slow answer kept a send that hangs waited for 100 s,
            # holding the channel's queue, until a restart (outside-in probe)
            self._timeout = max(self._timeout / 2, self._base_timeout)
        return result

    @property
    def patience(self) -> float:
        """How long a send is waited for now (see :meth:`send_keyed`)."""
        return self._timeout

    async def _send_once(self, msg: Message, idempotency_key: str | None) -> SendResult:
        try:
            done = _start_in_daemon_thread(lambda: self._send_blocking(msg, idempotency_key))
        except RuntimeError as exc:  # out of threads: ours to say, not the channel's
            return SendResult(ok=False, error=_unsent(exc))
        try:
            async with asyncio.timeout(self._timeout + _GRACE):
                return await asyncio.wrap_future(done)
        except TimeoutError:
            return SendResult(ok=False, error=unanswered(self._timeout))
        except Exception as exc:  # a bug in a plugin must not take the sender down
            error = f"{type(exc).__name__}: {exc}"
            return SendResult(ok=False, error=redact(error, self._secrets))
        finally:  # given up (the deadline, or a stop's cancel) while its thread runs on
            if idempotency_key is not None and not done.done():
                self._keep_given_up(idempotency_key, done)

    def _earlier_send(self, key: str) -> SendResult | None:
        """What stands in for a new send of the message ``key``: an earlier send of it
        that we stopped waiting for, still under way (sending again could deliver it
        twice) or delivered since (it went out after all); None to send it."""
        earlier = self._given_up.get(key)
        if earlier is None:
            return None
        if not earlier.done():
            return SendResult(ok=False, error=STILL_SENDING)
        del self._given_up[key]
        late = None if earlier.cancelled() or earlier.exception() else earlier.result()
        return replace(late, earlier=True) if late is not None and late.ok else None

    def _keep_given_up(self, key: str, done: concurrent.futures.Future[SendResult]) -> None:
        if len(self._given_up) >= _GIVEN_UP_KEPT:  # those settled long ago go first
            for old in [k for k, f in self._given_up.items() if f.done()]:
                del self._given_up[old]
        self._given_up[key] = done

    def part_room(self, msg: Message) -> int | None:
        """The longest body one post of ``msg`` may have without Apprise splitting it;
        None when the URL chooses its own ``overflow=`` (or cannot be used)."""
        limits = self._limits or _limits_of(_instantiate(self._url))
        if limits is None or not limits.split:
            return None
        room = limits.body - len(msg.title) - _PART_MARK - _SPLIT_MARGIN
        return room if room >= _LEAST_PART else None

    def post_room(self, msg: Message) -> int | None:
        """The longest body one post of ``msg`` may have on this service (Discord's 2,000
        characters, Telegram's 4,096 with the title), whatever the URL's ``overflow=``;
        None when the URL cannot be used."""
        limits = self._limits or _limits_of(_instantiate(self._url))
        if limits is None:
            return None
        title = len(msg.title) if not limits.title else 0  # put in the body
        return limits.body - title - _SPLIT_MARGIN

    def _send_blocking(self, msg: Message, idempotency_key: str | None) -> SendResult:
        plugin = _instantiate(self._url)
        if plugin is None:
            return SendResult(ok=False, permanent=True, error=_invalid_reason(self._url))
        if idempotency_key is not None:
            _add_idempotency_header(plugin, msg, idempotency_key)
        _patient(plugin, self._url, self._timeout)
        notifier = apprise.Apprise()
        notifier.add(plugin)
        began = time.monotonic()
        with notifier.notify(
            body=msg.body,
            title=msg.title,
            notify_type=_NOTIFY_TYPES.get(msg.severity, NotifyType.INFO),
            body_format=NotifyFormat.TEXT,
            timeout=self._timeout,
        ) as result:
            if result.status == AppriseResultStatus.SUCCESS:
                return SendResult(ok=True)
            if result.status == AppriseResultStatus.TIMEOUT:
                return SendResult(ok=False, error=unanswered(self._timeout))
            # Apprise words a read timeout as "A Connection error occurred": a slow
            # webhook that took the output on each of four attempts was told as a
            # connection error (outside-in probe). A failure that came when the read
            # timeout ran out is said as what it is.
            read_timeout = getattr(plugin, "socket_read_timeout", None)
            waited = time.monotonic() - began
            if isinstance(read_timeout, int | float) and 0 < read_timeout <= waited + 0.25:
                return SendResult(ok=False, error=unanswered(float(read_timeout)))
            reasons = list(dict.fromkeys(entry.message for entry in result.logs()))
            reason = " ".join(reasons[-2:]) or f"{plugin.service_name} refused the message"
            return SendResult(ok=False, error=redact(reason, self._secrets))


# Room kept for a part's " [12/34]" in its title.
_PART_MARK = 12
# Below this a part is not worth a post of its own: a URL that leaves less room is sent
# whole, and Apprise does what it can.
_LEAST_PART = 500


def message_parts(channel: Channel, msg: Message) -> list[Message]:
    """The posts ``msg`` goes out as through ``channel``: a body longer than its service
    takes is split here, at line ends where it can be, each part titled ``[i/n]``. Split
    by Apprise, the parts went in one call: one refused part made every part go again
    on the retry, and none could carry an idempotency key of its own. A URL that sets
    its own ``overflow=``, and channels that take any length, get the message whole."""
    if not isinstance(channel, SplitChannel):
        return [msg]
    room = channel.part_room(msg)
    if room is None or len(msg.body) <= room:
        return [msg]
    chunks = split_text(msg.body, room)
    n = len(chunks)
    return [
        replace(msg, title=f"{msg.title} [{i}/{n}]", body=chunk)
        for i, chunk in enumerate(chunks, start=1)
    ]


def split_text(text: str, room: int) -> list[str]:
    """``text`` in pieces of at most ``room`` characters, each cut after a line end when
    one lies in its second half (a line is not torn where it need not be)."""
    pieces: list[str] = []
    while len(text) > room:
        cut = text.rfind("\n", room // 2, room)
        cut = room if cut < 0 else cut + 1
        pieces.append(text[:cut])
        text = text[cut:]
    if text or not pieces:
        pieces.append(text)
    return pieces


def _patient(plugin: Any, url: str, timeout: float) -> None:
    """Wait for a slow service's answer most of the channel's timeout, unless the URL
    sets its own (``rto=``). Apprise waits 4 s: a webhook that took 6 s to answer had
    taken the message, was marked failed, and got it again on each retry (three or four
    copies; outside-in probe). The connection's own timeout (``cto``) stays short: a
    service that cannot be reached is not made slower to give up on."""
    from urllib.parse import parse_qs, urlsplit

    try:
        given = "rto" in parse_qs(urlsplit(url).query)
    except ValueError:
        given = False
    current = getattr(plugin, "socket_read_timeout", None)
    if given or not isinstance(current, int | float):
        return
    plugin.socket_read_timeout = max(float(current), timeout - _GRACE - 1.0)


class CommandChannel:
    """The owner's script; see the module docstring for the contract."""

    def __init__(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> None:
        if not argv:
            raise ValueError("a command channel needs a program")
        self.argv = list(argv)
        self._timeout = timeout
        self._name = os.path.basename(self.argv[0])
        name = redact(f"{COMMAND_PREFIX}{self.argv[0]}", self.argv[1:])
        self.key = _distinct(name, shlex.join(self.argv)) if self.argv[1:] else name

    async def send(self, msg: Message) -> SendResult:
        return await self.send_keyed(msg, None)

    async def send_keyed(self, msg: Message, idempotency_key: str | None) -> SendResult:
        if _empty(msg):
            return SendResult(ok=False, permanent=True, error=EMPTY_MESSAGE)
        payload = json.dumps(
            {
                "title": msg.title,
                "body": msg.body,
                "task": msg.task,
                "event": msg.event,
                "severity": msg.severity,
                "incident_kind": msg.incident_kind,
            },
            ensure_ascii=False,
        ).encode()
        env = None
        if idempotency_key is not None:
            env = {**os.environ, IDEMPOTENCY_ENV: idempotency_key}
        # Stdin is an unnamed temporary file holding the whole message before the
        # script exists (see the module docstring); nothing is left behind whatever
        # happens to either process.
        with contextlib.ExitStack() as stack:
            try:
                stdin = stack.enter_context(tempfile.TemporaryFile())
                stdin.write(payload)
                stdin.flush()
                stdin.seek(0)
            except OSError as exc:
                if out_of_resources(exc) is not None:
                    return SendResult(ok=False, error=_unsent(exc))
                reason = exc.strerror or type(exc).__name__
                return SendResult(ok=False, error=f"cannot stage the message: {reason}")
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=stdin,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                    env=env,
                )
            except (OSError, RuntimeError) as exc:
                if out_of_resources(exc, spawning=True) is not None:
                    return SendResult(ok=False, error=_unsent(exc, spawning=True))
                if isinstance(exc, RuntimeError):
                    raise
                reason = exc.strerror or type(exc).__name__
                return SendResult(ok=False, error=f"cannot start {self._name}: {reason}")
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), self._timeout)
        except TimeoutError:
            await _kill_group(proc)
            return SendResult(
                ok=False, error=f"{self._name} did not finish within {self._timeout:g}s"
            )
        except BaseException:
            await _kill_group(proc)
            raise
        if proc.returncode == 0:
            return SendResult(ok=True)
        tail = stderr.decode(errors="replace").strip().splitlines()[-_STDERR_LINES:]
        how = (
            f"was killed by signal {-proc.returncode}"
            if proc.returncode is not None and proc.returncode < 0
            else f"exited with status {proc.returncode}"
        )
        error = f"{self._name} {how}" + (f": {' / '.join(tail)}" if tail else "")
        return SendResult(ok=False, error=redact(error, self.argv[1:]))


def channel_for(url: str, timeout: float = DEFAULT_TIMEOUT) -> Channel:
    """The channel for one configured URL, its placeholders expanded now; an unusable
    URL gives a channel whose sends fail permanently (so the problem is shown, not
    swallowed)."""
    if has_placeholder(url):
        try:
            url = expand(url, current_environ())
        except (MissingVariableError, PlaceholderError) as exc:
            return InvalidChannel(_placeholder_key(url), f"cannot build the channel: {exc}")
    if url.strip().lower().startswith(COMMAND_PREFIX):
        try:
            argv = shlex.split(url.strip()[len(COMMAND_PREFIX) :])
        except ValueError as exc:
            return InvalidChannel(f"{COMMAND_PREFIX}…", f"cannot read the command: {exc}")
        if not argv:
            return InvalidChannel(COMMAND_PREFIX, "the command channel names no program")
        return CommandChannel(argv, timeout=timeout)
    channel = AppriseChannel(url, timeout=timeout)
    if _instantiate(url) is None:
        return InvalidChannel(channel.key, _invalid_reason(url))
    return channel


def _placeholder_key(url: str) -> str:
    """The name of a channel whose URL could not be expanded: as written, placeholders
    shown (they hold no secret), query and any literal credentials left out."""
    if url.strip().lower().startswith(COMMAND_PREFIX):
        argv = url.strip().split()
        return redact(argv[0]) if argv else COMMAND_PREFIX
    base = url.split("?", 1)[0].rstrip("/")
    return redact(base, [s for s in _url_secrets(base) if not has_placeholder(s)])


def check_channel_url(url: str) -> str | None:
    """Why ``url`` cannot be used as a channel (for config validation), or None."""
    channel = channel_for(url)
    return channel.reason if isinstance(channel, InvalidChannel) else None


def channel_key(url: str) -> str:
    """The secret-free stable name of the channel for ``url``."""
    return channel_for(url).key


_PLUGINS_LOADING = threading.Lock()
_plugins_loaded = False


def _load_plugins() -> None:
    """Load Apprise's plugins once, up front, hiding the DeprecationWarning that
    its e-mail plugin triggers by importing ``imghdr`` on Python 3.11/3.12 (ours
    to silence, not the owner's to see; it would be an error under strict test
    settings). Under a lock: ``functools.cache`` let two threads (the loop's and a
    sender's) load them at once, and a URL parsed meanwhile was "unparseable"."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    with _PLUGINS_LOADING:
        if _plugins_loaded:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            cast(Callable[[], None], N_MGR.load_modules)()
        _plugins_loaded = True


class _Limits(NamedTuple):
    split: bool  # Apprise splits a long body (no ``overflow=`` of the URL's own)
    body: int  # the service's longest body
    title: int  # its longest title (0: none, the title goes in the body)


def _limits_of(plugin: apprise.NotifyBase | None) -> _Limits | None:
    if plugin is None:
        return None
    split = plugin.overflow_mode == OverflowMode.SPLIT
    return _Limits(split, int(plugin.body_maxlen), int(plugin.title_maxlen or 0))


def _instantiate(url: str) -> apprise.NotifyBase | None:
    _load_plugins()
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return None
    query = {k.lower() for k in parse_qs(urlsplit(url).query, keep_blank_values=True)}
    if "overflow" not in query:
        plugin.overflow_mode = OverflowMode.SPLIT
    return plugin


def _add_idempotency_header(plugin: apprise.NotifyBase, msg: Message, key: str) -> None:
    """Send ``key`` as a header where the plugin posts to the owner's endpoint and the
    message goes in one request; a header the URL sets itself is left as it is."""
    if not isinstance(plugin, _HEADER_PLUGINS):
        return
    headers = cast(dict[str, str], plugin.headers)
    if any(name.lower() == IDEMPOTENCY_HEADER.lower() for name in headers):
        return
    size = len(msg.title) + len(msg.body) + _SPLIT_MARGIN
    if plugin.overflow_mode == OverflowMode.SPLIT and size > plugin.body_maxlen:
        return
    headers[IDEMPOTENCY_HEADER] = key


def _apprise_key(url: str, plugin: apprise.NotifyBase | None) -> str:
    if plugin is None:
        return f"{_scheme(url)}://… (invalid)"
    # The privacy URL masks tokens and passwords but not query values (custom
    # headers, API keys), so only scheme, host and path are kept.
    private_url = cast(Callable[..., str], plugin.url)(privacy=True)
    # Path segments are kept unless long enough to be a token (a chat id is not).
    name = redact(private_url.split("?", 1)[0].rstrip("/"), _url_secrets(url, min_len=20))
    return _distinct(name, url.strip().rstrip("/"))


# A channel's key names its queue in the outbox and its health. Two URLs that differ
# only in what the name hides (two Slack workspaces' tokens for one #alerts, two
# webhooks' ?token=) had one key: a failing one held the working one's messages back
# behind its retries, and every surface showed one channel. A name that hides part
# of its URL carries a short mark of the whole URL. The mark is a slow, salted digest
# cut to 24 bits, so that it cannot be used to check guesses of a password quickly.
_MARK_SALT = b"agentcron channel key"
_MARK_ROUNDS = 20_000


@functools.lru_cache(maxsize=1024)
def _distinct(name: str, whole: str) -> str:
    """``name``, with a mark of ``whole`` when the name leaves part of it out."""
    if name == whole:
        return name
    digest = hashlib.pbkdf2_hmac("sha256", whole.encode(), _MARK_SALT, _MARK_ROUNDS)
    return f"{name} #{digest.hex()[:6]}"


def _invalid_reason(url: str) -> str:
    scheme = _scheme(url)
    if not scheme:
        return "not a notification URL (expected service://…, e.g. tgram://TOKEN/CHAT)"
    _load_plugins()
    if scheme not in N_MGR:
        return f"no notification service is called {scheme}:// (is the URL misspelt?)"
    return f"Apprise cannot use this {scheme}:// URL: a part is missing or malformed"


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].strip().lower() if "://" in url else ""


def _url_secrets(url: str, min_len: int = 8) -> list[str]:
    """Parts of ``url`` that may be credentials, to blank out of error texts:
    user, password, and path segments and query values of ``min_len`` or more."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [parts.password or "", parts.username or ""]
    found += [seg for seg in parts.path.split("/") if len(seg) >= min_len]
    found += [v for vals in parse_qs(parts.query).values() for v in vals if len(v) >= min_len]
    if "@" not in parts.netloc and len(parts.netloc) >= 20:
        found += [parts.netloc, *parts.netloc.split(":")]  # tgram://BOT:TOKEN/…
    return [s for s in found if len(s) >= 4]


def _unsent(exc: BaseException, *, spawning: bool = False) -> str:
    """A send that agentcron could not start: whose limit it was, when it was one."""
    what = out_of_resources(exc, spawning=spawning)
    if what is None:
        return f"{type(exc).__name__}: {exc}"
    return send_words(what, exc)


def _start_in_daemon_thread(fn: Callable[[], T]) -> concurrent.futures.Future[T]:
    """Start blocking ``fn`` in a daemon thread; the caller bounds its wait, and the
    future outlives a caller that gave up (see ``AppriseChannel._earlier_send``).

    Not ``asyncio.to_thread``: a channel that hangs past every socket timeout
    would hold a default-executor thread, and ``asyncio.run`` waits for those at
    shutdown. A daemon thread is simply left behind.
    """
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def work() -> None:
        # Once running, the future cannot be cancelled by a caller that gave up,
        # so setting the outcome below never fails.
        if not done.set_running_or_notify_cancel():
            return
        try:
            done.set_result(fn())
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=work, name=CHANNEL_THREAD, daemon=True).start()
    return done


CHANNEL_THREAD = "agentcron-channel"


def sends_left_behind() -> int:
    """Channel sends still waiting for an answer that nobody waits for any more (a
    stop gave up on them): their threads are daemon threads, but Apprise's own worker
    threads under them are not, and the interpreter's exit waited for those."""
    return sum(1 for t in threading.enumerate() if t.name == CHANNEL_THREAD and t.is_alive())


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


__all__ = [
    "COMMAND_PREFIX",
    "AppriseChannel",
    "Channel",
    "CommandChannel",
    "InvalidChannel",
    "KeyedChannel",
    "SendResult",
    "channel_for",
    "channel_key",
    "check_channel_url",
]
