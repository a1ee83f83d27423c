"""URL checks for the config, and redaction so error messages never leak secrets.

Apprise URLs carry their credentials anywhere (``tgram://BOT_TOKEN/CHAT``,
``mailto://user:password@host``), so a message about a URL shows only its scheme
and, when it plainly is one, its host name.
"""

from __future__ import annotations

import difflib
import functools
import re
import shlex
import warnings

import apprise
import apprise.plugins

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_HOST = re.compile(r"^(localhost|[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"…*][^\s'\"]*")


def redact_url(url: str) -> str:
    """``scheme://host/…`` with credentials, tokens and the path hidden."""
    match = _SCHEME.match(url.strip())
    if match is None:
        return "'…'"
    rest = url.strip()[match.end() :]
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    _userinfo, at, host = netloc.rpartition("@")
    shown = host if _HOST.match(host) else "***"
    if at:
        shown = f"***@{shown}"
    tail = "/…" if len(rest) > len(netloc) else ""
    return f"{match.group(1)}://{shown}{tail}"


def redact_urls_in(text: str) -> str:
    """Redact every URL inside a free-form message (validator texts quote their input)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


@functools.cache
def _plugins() -> dict[str, str]:
    """Apprise's scheme -> service name, loaded once.

    Apprise imports its plugins lazily, and one of them imports the deprecated
    ``imghdr`` module; the warning is Apprise's business, not the user's, and must
    not turn into an error under ``-W error``.
    """
    manager = apprise.plugins.N_MGR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        manager.load_modules()  # type: ignore[no-untyped-call]  # apprise leaves it unannotated
    schemes: list[str] = manager.schemas()  # type: ignore[no-untyped-call]
    return {scheme: str(manager[scheme].service_name) for scheme in schemes}


_PORT = re.compile(r"^https?://(?:[^\s/?#@]*@)?(?:\[[^\]/]*\]|[^\s/?#:\[]*):(\d+)(?:[/?#]|$)")


def check_http_url(url: str) -> str | None:
    """Why ``url`` is not an http(s) URL, or None when it is one. A port no connection
    can use (``:99999``) is said here: at run time it failed as agentcron's own error."""
    if not re.match(r"^https?://[^\s/?#]+", url):
        return f"must be an http:// or https:// URL, got {redact_url(url)}"
    return check_port(url)


def check_port(url: str) -> str | None:
    """Why the port of an http(s) URL cannot be connected to, or None."""
    port = _PORT.match(url)
    if port is not None and not 0 < int(port.group(1)) <= 65535:
        return f"port {int(port.group(1))} is out of range (1 to 65535) in {redact_url(url)}"
    return None


def check_apprise_url(url: str) -> str | None:
    """Why Apprise cannot use ``url``, or None when it can (checked offline)."""
    if url.strip().lower().startswith("command:"):  # the owner's script, not Apprise
        try:
            argv = shlex.split(url.strip()[len("command:") :])
        except ValueError as exc:
            return f"cannot read the command channel: {exc}"
        if not argv:
            return "the command channel names no program"
        if "/" in argv[0] and not argv[0].startswith("/"):
            # looked for from the daemon's working folder at each send: an inline task
            # that changed it made every later message fail (outside-in probe)
            return (
                f"the command channel's program {argv[0]!r} is a relative path, looked for "
                "from the daemon's working folder at each send: give its absolute path"
            )
        return None
    match = _SCHEME.match(url.strip())
    if match is None:
        return (
            "not a notification URL: expected an Apprise URL such as "
            "tgram://BOT_TOKEN/CHAT_ID or json://host/path"
        )
    services = _plugins()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if apprise.Apprise().add(url.strip()):
            return None
    scheme = match.group(1).lower()
    shown = redact_url(url)
    if scheme in services:
        setup = getattr(apprise.plugins.N_MGR[scheme], "setup_url", None)
        hint = f": see {setup}" if setup else ""
        return f"Apprise cannot use this {services[scheme]} URL {shown} (check its format{hint})"
    message = f"unknown notification service '{scheme}://' in {shown}"
    if scheme in ("http", "https"):
        return f"{message}: for a plain webhook write json://… or jsons://…"
    close = difflib.get_close_matches(scheme, services, n=1)
    return f"{message} (did you mean '{close[0]}://'?)" if close else message
