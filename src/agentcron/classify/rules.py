"""The classification tables: HTTP statuses, exception names, exit codes, output words.

Kept as data so that reading this file answers "what does agentcron call a 529?"
without following code paths, and so a new provider's quirk is one table row.
Lookups here are pure; the order in which they are consulted lives in
:mod:`agentcron.classify.classifier`.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable, Mapping

from agentcron.model.enums import ErrorClass

E = ErrorClass

# --- HTTP -------------------------------------------------------------------------

STATUS_CLASSES: Mapping[int, ErrorClass] = {
    400: E.BAD_REQUEST,
    401: E.AUTH,
    402: E.QUOTA_EXHAUSTED,  # Payment Required: the account, not the request
    403: E.AUTH,
    404: E.NOT_FOUND,
    408: E.TIMEOUT,
    410: E.NOT_FOUND,
    413: E.BAD_REQUEST,
    422: E.BAD_REQUEST,
    429: E.RATE_LIMITED,
    500: E.SERVER_ERROR,
    502: E.SERVER_ERROR,
    503: E.SERVER_ERROR,
    504: E.SERVER_ERROR,
    529: E.OVERLOADED,  # Anthropic's "overloaded"
}

# Statuses on which providers report an empty wallet: OpenAI 429 insufficient_quota,
# Anthropic 400 "credit balance is too low", 402 from OpenRouter-style gateways.
QUOTA_STATUSES = frozenset({400, 402, 403, 429})

QUOTA_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active", "quota_exceeded"}
)
OVERLOADED_CODES = frozenset({"overloaded_error", "overloaded"})
CONTEXT_LENGTH_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})

QUOTA_WORDING = re.compile(
    r"insufficient_quota|exceeded your current quota|billing_hard_limit_reached"
    r"|billing hard limit|credit balance is too low|insufficient (?:credits?|balance|funds)"
    r"|out of credits|(?:credits?|quota) (?:has been |have been |is )?exhausted"
    r"|payment required",
    re.IGNORECASE,
)
OVERLOADED_WORDING = re.compile(r"overloaded", re.IGNORECASE)
CONTEXT_LENGTH_WORDING = re.compile(
    r"context_length_exceeded|context length|context window|maximum context"
    r"|prompt is too long|too many tokens",
    re.IGNORECASE,
)


# For an error code that arrives without an error status (a gateway that wraps an
# upstream failure in a 200). With a status, the status decides and the code refines.
PROVIDER_CODE_CLASSES: Mapping[str, ErrorClass] = {
    "insufficient_quota": E.QUOTA_EXHAUSTED,
    "billing_hard_limit_reached": E.QUOTA_EXHAUSTED,
    "billing_not_active": E.QUOTA_EXHAUSTED,
    "quota_exceeded": E.QUOTA_EXHAUSTED,
    "rate_limit_exceeded": E.RATE_LIMITED,
    "rate_limit_error": E.RATE_LIMITED,
    "overloaded_error": E.OVERLOADED,
    "overloaded": E.OVERLOADED,
    "server_error": E.SERVER_ERROR,
    "api_error": E.SERVER_ERROR,
    "internal_error": E.SERVER_ERROR,
    "service_unavailable": E.SERVER_ERROR,
    "timeout": E.TIMEOUT,
    "timeout_error": E.TIMEOUT,
    "invalid_api_key": E.AUTH,
    "authentication_error": E.AUTH,
    "permission_error": E.AUTH,
    "invalid_request_error": E.BAD_REQUEST,
    "context_length_exceeded": E.BAD_REQUEST,
    "model_not_found": E.NOT_FOUND,
    "not_found_error": E.NOT_FOUND,
}


def status_class(status: int, provider_code: str | None, text: str) -> ErrorClass:
    """The class an HTTP error status means, refined by the provider's code and words.

    ``text`` is the response body and message; providers put the distinction
    between "slow down" and "pay up" there, not in the status.
    """
    code = (provider_code or "").lower()
    if status in QUOTA_STATUSES and (code in QUOTA_CODES or QUOTA_WORDING.search(text)):
        return E.QUOTA_EXHAUSTED
    if code in OVERLOADED_CODES or (status == 503 and OVERLOADED_WORDING.search(text)):
        return E.OVERLOADED
    known = STATUS_CLASSES.get(status)
    if known is not None:
        return known
    return E.BAD_REQUEST if status < 500 else E.SERVER_ERROR


def is_context_length(provider_code: str | None, text: str) -> bool:
    return (provider_code or "").lower() in CONTEXT_LENGTH_CODES or bool(
        CONTEXT_LENGTH_WORDING.search(text)
    )


# --- Exception types ----------------------------------------------------------------
# Matched by class *name* along the MRO, most specific first, so the classifier never
# imports the SDK that raised (the failure may come from another process).

EXACT_TYPE_CLASSES: Mapping[str, ErrorClass] = {
    # openai / anthropic SDKs
    "RateLimitError": E.RATE_LIMITED,
    "AuthenticationError": E.AUTH,
    "PermissionDeniedError": E.AUTH,
    "PaymentRequiredError": E.QUOTA_EXHAUSTED,
    "APITimeoutError": E.TIMEOUT,
    "RequestTimeoutError": E.TIMEOUT,
    "APIConnectionError": E.NETWORK,
    "InternalServerError": E.SERVER_ERROR,
    "ServiceUnavailableError": E.SERVER_ERROR,
    "GatewayTimeoutError": E.SERVER_ERROR,
    "OverloadedError": E.OVERLOADED,
    "BadRequestError": E.BAD_REQUEST,
    "UnprocessableEntityError": E.BAD_REQUEST,
    "ContentTooLargeError": E.BAD_REQUEST,
    "ConflictError": E.BAD_REQUEST,
    "NotFoundError": E.NOT_FOUND,
    # httpx2 / requests / urllib3 / aiohttp
    "TimeoutException": E.TIMEOUT,
    "ReadTimeout": E.TIMEOUT,
    "WriteTimeout": E.TIMEOUT,
    "ConnectTimeout": E.TIMEOUT,
    "PoolTimeout": E.TIMEOUT,
    "ReadTimeoutError": E.TIMEOUT,
    "ConnectTimeoutError": E.TIMEOUT,
    "Timeout": E.TIMEOUT,
    "ConnectError": E.NETWORK,
    "ReadError": E.NETWORK,
    "WriteError": E.NETWORK,
    "NetworkError": E.NETWORK,
    "RemoteProtocolError": E.NETWORK,
    "ProtocolError": E.NETWORK,
    "NewConnectionError": E.NETWORK,
    "ClientConnectionError": E.NETWORK,
    "ServerDisconnectedError": E.NETWORK,
    "IncompleteRead": E.NETWORK,
    # builtins and the standard library
    "TimeoutError": E.TIMEOUT,
    "ConnectionError": E.NETWORK,
    "gaierror": E.NETWORK,
    "herror": E.NETWORK,
    "SSLEOFError": E.NETWORK,
    "ModuleNotFoundError": E.CONFIG_ERROR,  # the environment lacks a package
    # Plain bugs: named so that the message words of a ValueError("bad timeout")
    # are not mistaken for a real timeout.
    "ArithmeticError": E.CODE_ERROR,
    "AssertionError": E.CODE_ERROR,
    "AttributeError": E.CODE_ERROR,
    "ImportError": E.CODE_ERROR,
    "LookupError": E.CODE_ERROR,
    "NameError": E.CODE_ERROR,
    "NotImplementedError": E.CODE_ERROR,
    "RecursionError": E.CODE_ERROR,
    "SyntaxError": E.CODE_ERROR,
    "TypeError": E.CODE_ERROR,
    "ValueError": E.CODE_ERROR,
}

# For classes we have never heard of (MyRateLimitExceeded, FooTimeoutError).
TYPE_NAME_FRAGMENTS: tuple[tuple[str, ErrorClass], ...] = (
    ("ratelimit", E.RATE_LIMITED),
    ("toomanyrequests", E.RATE_LIMITED),
    ("overloaded", E.OVERLOADED),
    ("timeout", E.TIMEOUT),
    ("timedout", E.TIMEOUT),
    ("unauthorized", E.AUTH),
    ("authentication", E.AUTH),
)


def type_class(type_names: Iterable[str]) -> ErrorClass | None:
    """The class of the most specific exception type we recognise, if any."""
    for raw in type_names:
        name = raw.rsplit(".", 1)[-1]
        exact = EXACT_TYPE_CLASSES.get(name)
        if exact is not None:
            return exact
        folded = name.lower()
        for fragment, error_class in TYPE_NAME_FRAGMENTS:
            if fragment in folded:
                return error_class
    return None


# --- Exit codes -----------------------------------------------------------------------

EX_TEMPFAIL = 75
EXIT_CODE_CLASSES: Mapping[int, ErrorClass] = {
    64: E.CONFIG_ERROR,  # EX_USAGE: the task calls the program wrongly
    78: E.CONFIG_ERROR,  # EX_CONFIG
    124: E.TIMEOUT,  # timeout(1) stopped the program
    126: E.CONFIG_ERROR,  # found but not executable
    127: E.CONFIG_ERROR,  # command not found
}

# --- Signals --------------------------------------------------------------------------
# A signal agentcron sends (a timeout, overlap: replace, the daemon stopping) is
# classified where it is sent. Any other is read here. The kernel raises these
# because of what the program itself did, so running it again meets the same end:
# permanent, ``code_error``. Every other signal was sent from outside (the
# out-of-memory killer's SIGKILL, an operator's kill, a shutdown's SIGTERM): the work
# was interrupted, not wrong, and is retried as ``worker_lost``, as a python pool
# worker killed the same way is.

CRASH_SIGNALS: Mapping[int, str] = {
    signal.SIGSEGV: "a segmentation fault: an invalid memory access",
    signal.SIGBUS: "a bus error: a bad memory access, such as a truncated mapped file",
    signal.SIGILL: "an illegal instruction: a binary built for another CPU, or a corrupt one",
    signal.SIGFPE: "an arithmetic error such as an integer division by zero",
    signal.SIGABRT: "an abort, after a failed assertion or a fatal library error",
    signal.SIGSYS: "a forbidden or invalid system call",
    signal.SIGTRAP: "a trace or breakpoint trap",
    signal.SIGPIPE: "a write to a pipe or socket that nobody reads any more",
    signal.SIGXCPU: "its CPU time limit used up (ulimit -t)",
    signal.SIGXFSZ: "a write past its file size limit (ulimit -f)",
}
# The crashes proper (the others end a program for what it did, not for a fault).
FAULT_SIGNALS = frozenset(
    {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT, signal.SIGSYS}
)
# Crashes that a resource limit caused: the fix is the limit, not the code.
LIMIT_SIGNALS = frozenset({signal.SIGXCPU, signal.SIGXFSZ})
# Sent from outside, with the usual sender named in the explanation.
STOP_SIGNALS: Mapping[int, str] = {
    signal.SIGKILL: "often the out-of-memory killer, or an operator's kill -9",
    signal.SIGTERM: "perhaps an operator, a service manager or a shutdown",
    signal.SIGINT: "an interrupt, as Ctrl-C sends",
    signal.SIGHUP: "its terminal or session went away",
    signal.SIGQUIT: "an operator's quit signal",
}
_SHELL_SIGNAL_BASE = 128  # a shell reports a child killed by signal n as exit 128 + n


def signal_class(signum: int) -> ErrorClass:
    """``code_error`` for a crash of the program's own making, else ``worker_lost``."""
    return E.CODE_ERROR if signum in CRASH_SIGNALS else E.WORKER_LOST


def signal_of(exit_code: int | None, signum: int | None) -> int | None:
    """The signal that ended a process: given, a negative return code, or a shell's
    128 + n for a signal in either table (other codes above 128 are left alone: a
    program may pick 150 for its own reasons)."""
    if signum is not None:
        return signum
    if exit_code is None:
        return None
    if exit_code < 0:
        return -exit_code
    number = exit_code - _SHELL_SIGNAL_BASE
    return number if number in CRASH_SIGNALS or number in STOP_SIGNALS else None


def signal_label(signum: int) -> str:
    """``SIGKILL`` or, for a number Python has no name for, ``signal 77``."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# --- Output words ---------------------------------------------------------------------
# Ordered: the first pattern that matches wins. Quota before rate limits (an
# insufficient_quota error also says 429), auth and server errors before the loose
# "timeout" words (a "504 Gateway Timeout" is the server's failure). Bare numbers
# only count next to HTTP-ish words, so "processed 429 rows" is not a rate limit.

_HTTPISH = r"(?:HTTP(?:/[\d.]+)?|status(?: code)?|code|error)\W{0,3}"

OUTPUT_PATTERNS: tuple[tuple[re.Pattern[str], ErrorClass], ...] = (
    (QUOTA_WORDING, E.QUOTA_EXHAUSTED),
    (
        re.compile(
            _HTTPISH + r"401\b|\b401 (?:Unauthorized|Client)"
            r"|unauthori[sz]ed|invalid[ _\-]api[ _\-]key|incorrect api key|api key not valid"
            r"|authentication_error|invalid x-api-key|api_key client option must be set"
            r"|could not resolve authentication method|missing credentials",
            re.IGNORECASE,
        ),
        E.AUTH,
    ),
    (re.compile(r"overloaded|" + _HTTPISH + r"529\b", re.IGNORECASE), E.OVERLOADED),
    (
        re.compile(
            _HTTPISH + r"429\b|\b429 (?:Too|Client|Rate)"
            r"|too many requests|rate[ _\-]?limit",
            re.IGNORECASE,
        ),
        E.RATE_LIMITED,
    ),
    (
        re.compile(
            r"internal server error|bad gateway|service unavailable|gateway time-?out"
            r"|" + _HTTPISH + r"50[0234]\b",
            re.IGNORECASE,
        ),
        E.SERVER_ERROR,
    ),
    (re.compile(r"timed out|timeout", re.IGNORECASE), E.TIMEOUT),
    (
        re.compile(
            r"ECONNRESET|ECONNREFUSED|ECONNABORTED|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN"
            r"|connection (?:refused|reset|aborted)|name or service not known"
            r"|temporary failure in name resolution|nodename nor servname"
            r"|network is unreachable|no route to host|could not resolve host"
            r"|getaddrinfo failed|broken pipe|remote end closed connection",
            re.IGNORECASE,
        ),
        E.NETWORK,
    ),
)

PYTHON_TRACEBACK = "Traceback (most recent call last)"
# The closing line of a Python traceback: "pkg.mod.SomeError: message" or "SomeError".
EXCEPTION_LINE = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s|:$|$)")


def output_match(text: str) -> tuple[ErrorClass, str] | None:
    """The first output pattern that matches, with the line it matched in."""
    for pattern, error_class in OUTPUT_PATTERNS:
        found = pattern.search(text)
        if found is not None:
            start = text.rfind("\n", 0, found.start()) + 1
            end = text.find("\n", found.end())
            return error_class, text[start : end if end != -1 else len(text)].strip()
    return None


def traceback_exception_line(text: str) -> str | None:
    """The ``SomeError: message`` line that ends the last Python traceback in ``text``."""
    at = text.rfind(PYTHON_TRACEBACK)
    if at == -1:
        return None
    for line in text[at:].splitlines()[1:]:
        if line and not line[0].isspace() and EXCEPTION_LINE.match(line):
            # The first unindented line after the frames is the exception.
            return line.strip()
    return None
