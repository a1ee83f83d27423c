"""The one redaction function for notifications, logs, stored errors and kept output.

Secrets reach text by many roads: a provider echoes part of a key in a 401 body, a
command prints its own environment, an Apprise URL carries a bot token, a traceback
shows a connection string. Redaction therefore works in two layers: the exact values
the caller knows to be secret (the daemon's and the task's environment), and patterns
for the shapes secrets take when nobody told us about them. Over-redacting a word in
an error message costs little; leaking a key costs a lot, so the patterns lean
towards the former.

Cost: kept output files are redacted when they are written, and a run may print
hundreds of megabytes, so the time must grow with the text alone. The known values
are one compiled alternation, scanned once (not a pass per value), and they go
first, so a shape can never cut one in half. Each shape starts with a literal (the
``://`` of a URL, the word ``password``): Python's regex engine finds a literal
prefix with a fast search, while an alternation of all shapes would be tried at
every position of the text (measured: 1.5 s against 0.2 s for 5 MB of log lines).
Every repetition is bounded or runs over a class that ends at the next separator,
so no input makes a scan quadratic.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping

REPLACEMENT = "[REDACTED]"

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# Values that sit in secret-named variables without being secrets
# (TOKENIZERS_PARALLELISM=false); redacting them would blank common words.
_NOT_SECRET_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null"})
_MIN_SECRET_LEN = 4
_MAX_PASSES = 3

# A value that is already the replacement must not match again, or redaction
# would not be idempotent ("[REDACTED]" -> "[REDACTED]]").
_NOT_DONE = r"(?!\[REDACTED\])"
# `-u 1000:1000` of docker, podman: not curl's user:password (ids of up to 5 digits: a
# longer number after the colon is taken for a numeric password, as before)
_UID_GID = re.compile(r"\d{1,5}:\d{1,5}")

_Replace = Callable[[re.Match[str]], str]


def _whole(_m: re.Match[str]) -> str:
    return REPLACEMENT


def _after(head: str) -> _Replace:
    """Keep the named ``head`` group (``Bearer ``, ``?token=``) and replace the rest."""
    return lambda m: m.group(head) + REPLACEMENT


def _keep_quotes(m: re.Match[str]) -> str:
    """``"two words"`` -> ``"[REDACTED]"``, so quoted values go whole and JSON stays JSON."""
    value = m.group("pw_value")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return m.group("pw_head") + value[0] + REPLACEMENT + value[0]
    return m.group("pw_head") + REPLACEMENT


_VALUE = r"[^\s'\",;&}]+"
_PW_TAIL = (
    r"[\w.\-]{0,40}['\"]?\s*[:=]\s*)(?P<pw_value>\"[^\"\n]+\"|'[^'\n]+'|" + _NOT_DONE + _VALUE + ")"
)
_KV_TAIL = r"s?['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9+/_\-.~]{16,}={0,2}"
# a flag naming a secret, without its dashes: token, auth-token, password, db-pass,
# secret, client-secret, api-key, apikey, credentials
_SECRET_FLAG = (
    r"(?:[a-z0-9][\w.-]{0,40}[-_])?(?:token|password|passwd|passphrase|pass|secret|api[-_]?key"
    r"|apikey"
    r"|credentials?|auth)(?![\w-])"
)
_ARGV_FLAG = re.compile(r"(?i)-{1,2}" + _SECRET_FLAG, re.ASCII)


def _url(m: re.Match[str]) -> str:
    user = m.group("url_user")
    return "://" + (REPLACEMENT if user is None else f"{user}:{REPLACEMENT}") + "@"


# Applied in this order: specific shapes first. A shape that names a secret by its
# key ("password", "token") starts at that word; the name before it stays anyway.
#
# Each shape comes with the words (lower case) it cannot match without: a text that
# lacks them all skips the shape for the cost of a substring search. ASCII matching
# keeps that exact: under Unicode rules "(?i)secret" would also match a long s.
_SHAPES: tuple[tuple[tuple[str, ...], re.Pattern[str], _Replace], ...] = tuple(
    (needles, re.compile(pattern, re.ASCII), replace)
    for needles, pattern, replace in (
        # scheme://TOKEN@host (a token as the user name, as GitHub allows) and
        # scheme://user:password@host
        (
            ("://",),
            r"://(?:[A-Za-z0-9_\-]{20,200}@|(?P<url_user>[^\s/?#@:'\"]{0,200}):"
            + _NOT_DONE
            + r"[^\s/?#@'\"]{1,500}@)",
            _url,
        ),
        # Telegram bot tokens: tgram://123456:ABC.../chat, api.telegram.org/bot123456:ABC.../
        ((":",), r"\d(?<!\d\d)\d{5,11}:[A-Za-z0-9_\-]{30,}", _whole),
        # OpenAI / Anthropic style keys: sk-..., sk-proj-..., sk-ant-api03-...
        (("sk-",), r"sk-(?<![A-Za-z0-9]sk-)[A-Za-z0-9_\-]{16,}", _whole),
        # Other well-known prefixes: GitHub, Slack, Google, Hugging Face, GitLab, AWS.
        (
            ("gh", "github_pat_", "xox", "aiza", "hf_", "glpat-", "akia", "asia"),
            r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
            r"|xox[abposr]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{30,}|hf_[A-Za-z0-9]{20,}"
            r"|glpat-[A-Za-z0-9_\-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9]))",
            _whole,
        ),
        # JSON Web Tokens
        (
            ("eyj",),
            r"eyJ(?<!\weyJ)[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
            _whole,
        ),
        # Authorization: Bearer xyz / "authorization": "Basic xyz" (Proxy- too)
        (
            ("authorization",),
            r"(?i:(?P<head>authorization['\"]?\s*[:=]\s*['\"]?)"
            + _NOT_DONE
            + r"(?:(?:bearer|basic|token|bot|apikey|digest)\s+)?[^\s'\",;}]+)",
            _after("head"),
        ),
        # Bearer xyz anywhere else
        (("bearer",), r"(?i:(?P<head>bearer\s+))[A-Za-z0-9\-._~+/]{8,}=*", _after("head")),
        # ?token=... &api_key=... &sig=... in URLs
        (
            ("=",),
            r"(?i:(?P<head>[?&;#][a-z0-9_\-.]{0,40}"
            r"(?:token|key|secret|password|passwd|sig|signature|auth|credential)"
            r"[a-z0-9_\-.]{0,40}=)" + _NOT_DONE + r"[^&\s#'\"<>]+)",
            _after("head"),
        ),
        # password=hunter2, "client_secret": "two words": any value, quoted ones whole.
        (("pass",), r"(?i:(?P<pw_head>pass(?:word|wd|phrase)" + _PW_TAIL + ")", _keep_quotes),
        (("secret",), r"(?i:(?P<pw_head>secret" + _PW_TAIL + ")", _keep_quotes),
        (("credential",), r"(?i:(?P<pw_head>credential" + _PW_TAIL + ")", _keep_quotes),
        # api_key=..., X-Api-Key: ..., token: ...: only long token-like values, so
        # "max_tokens: 4000" stays readable.
        (("key",), r"(?i:(?P<head>key" + _KV_TAIL + ")", _after("head")),
        (("token",), r"(?i:(?P<head>token" + _KV_TAIL + ")", _after("head")),
        # a command line's `--token VALUE`, `--password "two words"` (the value is the
        # next word, not after `=`: the shapes above missed it; secrets probe)
        (
            ("--",),
            r"(?i:(?P<pw_head>(?<![\w-])--"
            + _SECRET_FLAG
            + r"[ \t]+)(?!-)(?P<pw_value>\"[^\"\n]+\""
            r"|'[^'\n]+'|" + _NOT_DONE + r"[^\s'\"]+))",
            _keep_quotes,
        ),
        # curl's `-u user:password`, `--user user:password`; not `docker run -u 1000:1000`
        # (a uid and a gid, shown as `1000:[REDACTED]`: review)
        (
            ("-u", "--user"),
            r"(?P<head>(?<![\w-])(?:-u|--user)[ \t]+['\"]?"
            r"(?!\d{1,5}:\d{1,5}(?=[\s'\"]|$))[^\s:'\"]+:)" + _NOT_DONE + r"[^\s'\"]+",
            _after("head"),
        ),
    )
)


@functools.lru_cache(maxsize=64)
def _values_pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for the known values; ``values`` come longest first, so a value
    that contains another as a prefix is replaced whole."""
    return re.compile("|".join(re.escape(v) for v in values))


def secret_values_from_env(env: Mapping[str, str]) -> list[str]:
    """Values of variables whose names say they are secret, longest first.

    Longest first so that a key containing another secret as a prefix is replaced
    whole rather than leaving its tail behind.
    """
    values = {
        value
        for name, value in env.items()
        if _SECRET_NAME.search(name)
        and len(value) >= _MIN_SECRET_LEN
        and value.strip().lower() not in _NOT_SECRET_VALUES
    }
    return sorted(values, key=lambda v: (-len(v), v))


def line_secrets(secrets: Iterable[str]) -> list[str]:
    """``secrets`` plus each long enough line of the ones that span lines.

    Text redacted in pieces cut at line ends (a large output file) never sees a
    multi-line value (a PEM key in the environment) whole; its lines it does see.
    """
    out = set()
    for value in secrets:
        out.add(value)
        if "\n" in value:
            out.update(
                line.strip() for line in value.splitlines() if len(line.strip()) >= _MIN_SECRET_LEN
            )
    return sorted(out, key=lambda v: (-len(v), v))


def redact_argv(argv: list[str], secrets: Iterable[str] = ()) -> list[str]:
    """A command's items redacted one by one, and the item after a flag that names a
    secret (``--token``, ``--password``, curl's ``-u user:``) withheld: as separate
    items, redacting each alone showed ``["--token", "abc123"]`` whole (secrets probe)."""
    known = list(secrets)
    out: list[str] = []
    for i, item in enumerate(argv):
        before = argv[i - 1] if i else ""
        if _ARGV_FLAG.fullmatch(before) and not item.startswith("-"):
            out.append(REPLACEMENT)
        elif before in ("-u", "--user") and ":" in item and not _UID_GID.fullmatch(item):
            out.append(item.split(":", 1)[0] + ":" + REPLACEMENT)
        else:
            out.append(redact(item, known))
    return out


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace secrets in ``text`` by ``[REDACTED]``; idempotent and never raises.

    If redaction itself fails (a broken ``secrets`` iterable, say) the whole text is
    withheld: showing less is the safe failure.
    """
    try:
        result = text if isinstance(text, str) else str(text)
        known = tuple(
            sorted(
                {
                    s
                    for s in secrets
                    if isinstance(s, str) and len(s) >= _MIN_SECRET_LEN and s not in REPLACEMENT
                },
                key=lambda v: (-len(v), v),
            )
        )
        values = _values_pattern(known) if known else None
        # A replacement can complete a shape with its neighbours (a replaced user name
        # next to a key); a few passes reach the fixed point that makes this
        # idempotent. Text with nothing to replace is scanned once.
        for _ in range(_MAX_PASSES):
            before = result
            if values is not None:
                result = values.sub(REPLACEMENT, result)
            lowered = result.lower()
            for needles, pattern, replace in _SHAPES:
                if not needles or any(n in lowered for n in needles):
                    result = pattern.sub(replace, result)
            if result == before:
                break
        return result
    except Exception:
        return REPLACEMENT


_environ_secrets: dict[tuple[tuple[bytes, bytes], ...], tuple[str, ...]] = {}


def daemon_secrets() -> tuple[str, ...]:
    """The secret values of this process's environment as it is now.

    Text is redacted when it is written (stored errors, kept output, messages) with
    the environment of the daemon that ran the task, which a later reader's shell
    may lack. A daemon's environment does not change, so the list is kept and built
    again only when the environment differs from the one it was built from (tests
    and embedding programs do change it); checking costs a tuple of the raw entries.
    """
    key = tuple(os.environb.items())
    found = _environ_secrets.get(key)
    if found is None:
        found = tuple(secret_values_from_env(os.environ))
        _environ_secrets.clear()
        _environ_secrets[key] = found
    return found
