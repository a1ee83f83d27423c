"""The one redaction function for notifications, logs and stored errors.

Secrets reach error text by many roads: a provider echoes part of a key in a 401
body, a command prints its own environment, an Apprise URL carries a bot token, a
traceback shows a connection string. Redaction therefore works in two layers: the
exact values the caller knows to be secret (the task's environment), and patterns
for the shapes secrets take when nobody told us about them. Over-redacting a word
in an error message costs little; leaking a key costs a lot, so the patterns lean
towards the former.
"""

from __future__ import annotations

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

# Ordered: specific shapes first, so a key inside a URL is caught by its own shape
# before the generic "name=value" rule sees it. Name fragments are bounded ({0,40})
# so a megabyte of base64 without separators cannot make the scan quadratic.
_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # scheme://user:password@host
    (
        re.compile(
            r"(?i)\b([a-z][a-z0-9+.\-]{0,30}://)([^\s/?#@:'\"]{0,200}):"
            + _NOT_DONE
            + r"([^\s/?#@'\"]{1,500})@"
        ),
        r"\1\2:" + REPLACEMENT + "@",
    ),
    # scheme://TOKEN@host (a token used as the user name, as GitHub allows)
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}://)[A-Za-z0-9_\-]{20,200}@"),
        r"\1" + REPLACEMENT + "@",
    ),
    # Telegram bot tokens: tgram://123456:ABC.../chat, api.telegram.org/bot123456:ABC.../
    (re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_\-]{30,}"), REPLACEMENT),
    # OpenAI / Anthropic style keys: sk-..., sk-proj-..., sk-ant-api03-...
    (re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{16,}"), REPLACEMENT),
    # Other well-known prefixes: GitHub, Slack, Google, Hugging Face, GitLab, AWS.
    (
        re.compile(
            r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
            r"|xox[abposr]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{30,}|hf_[A-Za-z0-9]{20,}"
            r"|glpat-[A-Za-z0-9_\-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9]))"
        ),
        REPLACEMENT,
    ),
    # JSON Web Tokens
    (
        re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
        REPLACEMENT,
    ),
    # Authorization: Bearer xyz / "authorization": "Basic xyz"
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
            + _NOT_DONE
            + r"(?:(?:bearer|basic|token|bot|apikey|digest)\s+)?[^\s'\",;}]+"
        ),
        r"\1" + REPLACEMENT,
    ),
    # Bearer xyz anywhere else
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*"), r"\1" + REPLACEMENT),
    # ?token=... &api_key=... &sig=... in URLs
    (
        re.compile(
            r"(?i)([?&;#][a-z0-9_\-.]{0,40}"
            r"(?:token|key|secret|password|passwd|sig|signature|auth|credential)"
            r"[a-z0-9_\-.]{0,40}=)" + _NOT_DONE + r"[^&\s#'\"<>]+"
        ),
        r"\1" + REPLACEMENT,
    ),
    # password=hunter2, "client_secret": "two words": any value, quoted ones whole;
    # passwords are not long hex.
    (
        re.compile(
            r"(?i)((?<![\w.\-])[\w.\-]{0,40}(?:password|passwd|passphrase|secret|credential)"
            r"[\w.\-]{0,40}['\"]?\s*[:=]\s*)"
            r"(?:\"[^\"\n]+\"|'[^'\n]+'|" + _NOT_DONE + r"[^\s'\",;&}]+)"
        ),
        lambda m: m.group(1) + _keep_quotes(m.group(0)[len(m.group(1)) :]),
    ),
    # api_key=..., X-Api-Key: ..., token: ...: only long token-like values, so
    # "max_tokens: 4000" stays readable.
    (
        re.compile(
            r"(?i)((?<![\w.\-])[\w.\-]{0,40}(?:key|token)s?['\"]?\s*[:=]\s*['\"]?)"
            r"[A-Za-z0-9+/_\-.~]{16,}={0,2}"
        ),
        r"\1" + REPLACEMENT,
    ),
)


def _keep_quotes(value: str) -> str:
    """``"two words"`` -> ``"[REDACTED]"``, so quoted values go whole and JSON stays JSON."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[0] + REPLACEMENT + value[0]
    return REPLACEMENT


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


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace secrets in ``text`` by ``[REDACTED]``; idempotent and never raises.

    If redaction itself fails (a broken ``secrets`` iterable, say) the whole text is
    withheld: showing less is the safe failure.
    """
    try:
        result = text if isinstance(text, str) else str(text)
        known = sorted(
            {
                s
                for s in secrets
                if isinstance(s, str) and len(s) >= _MIN_SECRET_LEN and s not in REPLACEMENT
            },
            key=lambda v: (-len(v), v),
        )
        # One pass can expose a match for another pattern (a replaced user name
        # next to a key); a few passes reach the fixed point that makes this
        # idempotent.
        for _ in range(_MAX_PASSES):
            before = result
            for value in known:
                result = result.replace(value, REPLACEMENT)
            for pattern, replacement in _PATTERNS:
                result = pattern.sub(replacement, result)
            if result == before:
                break
        return result
    except Exception:
        return REPLACEMENT
