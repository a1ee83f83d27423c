"""Cross-site request forgery guard for the dashboard's forms.

The dashboard has no cookies and no login, so a forged request could only ride on
the network position of the victim's browser (a page on the internet posting to
http://127.0.0.1:8765). Browsers send ``Origin`` on every POST (``Referer`` as a
fallback for old ones); a POST whose origin is not this server's own host and port
is refused before anything is changed. A POST with neither header is refused too:
a browser always sends one, and scripts should use the JSON API.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from fastapi import Request

_DEFAULT_PORTS = {"http": 80, "https": 443}


class ForeignOrigin(Exception):
    """A state-changing request that did not come from a page of this server."""


def _same_place(ours: SplitResult, theirs: SplitResult) -> bool:
    """Same host and port; a port left out on both sides matches (a proxy in front may
    speak https to the browser and http to us), one left out on one side is its
    scheme's default. Raises ValueError for a malformed port."""
    if (ours.hostname or "").lower() != (theirs.hostname or "").lower():
        return False
    if ours.port is None and theirs.port is None:
        return True
    return (ours.port or _DEFAULT_PORTS.get(ours.scheme, 80)) == (
        theirs.port or _DEFAULT_PORTS.get(theirs.scheme, 80)
    )


def check_same_origin(request: Request) -> None:
    """Raise :class:`ForeignOrigin` (with what was seen) unless the request's
    ``Origin`` (or, without it, ``Referer``) names the host the request was sent to.

    Host and port are compared, not the scheme: behind a TLS-terminating proxy the
    page is https while this server sees http, and the host still identifies it.
    """
    host_header = request.headers.get("host")
    if not host_header:
        raise ForeignOrigin("the request has no Host header")
    ours = urlsplit(f"{request.url.scheme}://{host_header}")
    origin = request.headers.get("origin")
    source = origin if origin is not None else request.headers.get("referer")
    name = "Origin" if origin is not None else "Referer"
    if not source:
        raise ForeignOrigin("the request has neither an Origin nor a Referer header")
    if source == "null":
        raise ForeignOrigin("the Origin is 'null' (a sandboxed or privacy-stripped page)")
    theirs = urlsplit(source)
    try:
        same = bool(theirs.hostname) and _same_place(ours, theirs)
    except ValueError:  # a port that is not a number, on either side
        same = False
    if not same:
        raise ForeignOrigin(f"the {name} {source!r} is not this server ({host_header})")
