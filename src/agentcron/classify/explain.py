"""Plain-language words for failures: what happened, and for permanent ones what to fix.

The owner reads these at 7 a.m. on a phone, so each explanation is one line that
names the cause in their terms ("the API quota or credit is used up") followed by
the evidence in brackets ("HTTP 429 insufficient_quota"), never a stack trace.
"""

from __future__ import annotations

import json
import re
import signal as signals
from collections.abc import Mapping
from typing import Literal

from agentcron.classify import rules
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import FailureInfo
from agentcron.redact import redact

E = ErrorClass

# How the class was decided; it changes which evidence is worth quoting.
Basis = Literal["rule", "known", "status", "code", "type", "exit", "signal", "output", "default"]

EXPLANATION_LIMIT = 300
_EVIDENCE_LIMIT = 160

_EXPLANATIONS: Mapping[ErrorClass, str] = {
    E.RATE_LIMITED: "{who} is rate-limiting requests",
    E.OVERLOADED: "{who} is overloaded and turned the request away",
    E.SERVER_ERROR: "{who} had an internal error",
    E.TIMEOUT: "the request to {who} timed out",
    E.NETWORK: "the connection to {who} failed",
    E.WORKER_LOST: "the worker running the task died mid-run (crash, kill -9 or power loss)",
    E.AUTH: "{who} rejected the API key",
    E.QUOTA_EXHAUSTED: "the API quota or credit is used up",
    E.BAD_REQUEST: "{who} rejected the request as invalid",
    E.NOT_FOUND: "{who} does not know the requested URL or model",
    E.CODE_ERROR: "the task's own code failed",
    E.CONFIG_ERROR: "the task is misconfigured",
}

_FIXES: Mapping[ErrorClass, str] = {
    E.AUTH: "check the API key: it may be missing, mistyped, revoked or lack access",
    E.QUOTA_EXHAUSTED: "top up the account or raise the quota, then trigger the task again",
    E.BAD_REQUEST: (
        "check the model name and parameters; a prompt longer than the model's "
        "context window is rejected this way too"
    ),
    E.NOT_FOUND: "check the URL and the model name",
    E.CODE_ERROR: "fix the error shown in the output, then trigger the task again",
    E.CONFIG_ERROR: "check the task's configuration (command, module path, permissions)",
}

# The llm wording of these fixes talks about models; an http task has none.
_HTTP_FIXES: Mapping[ErrorClass, str] = {
    E.BAD_REQUEST: "check the request's method, headers and body",
    E.NOT_FOUND: "check the URL",
    E.AUTH: "check the credentials the request sends (token, API key, headers)",
}

_EXIT_TEXT: Mapping[int, tuple[str, str | None]] = {
    64: (
        "the program says it was called wrongly (exit code 64, EX_USAGE)",
        "check the command's arguments",
    ),
    78: (
        "the program reports a configuration error (exit code 78, EX_CONFIG)",
        "check the program's configuration",
    ),
    124: ("the program was stopped by timeout(1) (exit code 124)", None),
    126: (
        "the command was found but is not executable (exit code 126)",
        "make the file executable (chmod +x) or run it through its interpreter",
    ),
    127: (
        "the command was not found (exit code 127)",
        "check that the program is installed and on PATH, or give its full path",
    ),
    rules.EX_TEMPFAIL: (
        "the command reported a temporary failure (exit code 75, EX_TEMPFAIL)",
        None,
    ),
}

_ENV_KEY_NAME = re.compile(r"\b([A-Z][A-Z0-9_]*_(?:API_KEY|KEY|TOKEN))\b")


def explain(error_class: ErrorClass, *, who: str = "the provider") -> tuple[str, str | None]:
    """The generic explanation of a class and, for permanent classes, the fix."""
    text = _EXPLANATIONS[error_class].format(who=who)
    return text, (None if error_class.transient else _FIXES.get(error_class))


def describe(
    failure: FailureInfo, error_class: ErrorClass, basis: Basis, evidence: str | None = None
) -> tuple[str, str | None]:
    """The explanation and fix for one classified failure, redacted and on one line.

    ``evidence`` is what decided the class when the failure itself does not say it
    (the output line a pattern matched, the user rule that fired).
    """
    text, fix = explain(error_class, who=_who(failure))
    if failure.action == "http" and error_class in _HTTP_FIXES:
        fix = _HTTP_FIXES[error_class]
    if basis == "status" and failure.http_status is not None:
        text, fix = _http_text(failure, error_class, text, fix)
    elif basis == "exit" and failure.exit_code is not None and failure.exit_code in _EXIT_TEXT:
        text, exit_fix = _EXIT_TEXT[failure.exit_code]
        if exit_fix is not None and not error_class.transient:
            fix = exit_fix
        line = evidence or last_meaningful_line(failure.output_tail)
        if line:
            text = f"{text}: {_short(line)}"
    elif basis == "signal":
        text = _signal_text(failure)
        fix = "find out what stopped it (memory limit, an operator) and trigger the task again"
    elif error_class is E.CODE_ERROR and basis in ("type", "output", "default"):
        text = _code_error_text(failure, evidence)
    elif basis == "type" and "ModuleNotFoundError" in failure.exception_types:
        text = f"a Python module could not be imported ({failure.message})"
        fix = "install the missing package or fix the module path"
    elif basis == "known":
        if error_class is E.TIMEOUT:
            text = "the run took longer than its timeout and was stopped"
        if failure.message:
            text = f"{text} ({failure.message})"
    elif basis == "rule":
        text = f"{text} (classify rule {evidence!r} matched)"
    elif basis == "code":
        text = f"{text} ({_short(failure.message or evidence or '')})"
    elif basis in ("output", "type") or failure.message:
        detail = evidence or failure.message
        prefix = _exit_prefix(failure)
        if prefix and detail:
            detail = f"{prefix}: {detail}"
        elif prefix:
            detail = prefix
        if detail:
            text = f"{text} ({_short(detail)})"
    if error_class is E.AUTH and fix is not None:
        fix = _auth_fix(failure, fix)
    return _one_line(text, EXPLANATION_LIMIT), (_one_line(fix, EXPLANATION_LIMIT) if fix else None)


def _who(failure: FailureInfo) -> str:
    module = (failure.exception_module or "").split(".")[0]
    if failure.action == "llm" or module in ("openai", "anthropic"):
        return "the model provider"
    if failure.action == "http" or failure.http_status is not None:
        return "the server"
    return "the provider"


def _http_text(
    failure: FailureInfo, error_class: ErrorClass, text: str, fix: str | None
) -> tuple[str, str | None]:
    status = failure.http_status
    code = failure.provider_code
    haystack = " ".join(p for p in (failure.body, failure.message) if p)
    if error_class is E.BAD_REQUEST and rules.is_context_length(code, haystack):
        text = "the prompt is longer than the model's context window"
        fix = "shorten the prompt or its context, or use a model with a larger context window"
    elif status is not None and status < 400:
        text = f"{_who(failure)} answered with a status the task does not expect"
        fix = "check the URL (a redirect?) and the task's expect list"
    evidence = f"HTTP {status}" + (f" {code}" if code else "")
    provider_message = _provider_message(failure.body)
    if provider_message and not error_class.transient:
        evidence = f"{evidence}: {_short(provider_message)}"
    return f"{text} ({evidence})", fix


def _provider_message(body: str | None) -> str | None:
    if not body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    for obj in (data.get("error") if isinstance(data, dict) else None, data):
        if isinstance(obj, dict) and isinstance(obj.get("message"), str) and obj["message"]:
            return str(obj["message"])
    return None


def _exit_prefix(failure: FailureInfo) -> str | None:
    if failure.exit_code is None:
        return None
    return f"exit code {failure.exit_code}"


def _subject(failure: FailureInfo) -> str:
    return "the precheck" if failure.action == "precheck" else "the command"


def _code_error_text(failure: FailureInfo, evidence: str | None) -> str:
    line = evidence or last_meaningful_line(failure.output_tail) or failure.message
    if failure.exit_code is not None:
        head = f"{_subject(failure)} exited with code {failure.exit_code}"
    elif failure.exception_types:
        head = "the function raised" if failure.action == "python" else "the task raised"
        return f"{head} {_short(failure.message or line)}"
    elif failure.http_status is not None:
        head = f"{_who(failure)} answered HTTP {failure.http_status}"
    else:
        head = "the task failed"
    return f"{head}: {_short(line)}" if line else head


def _signal_text(failure: FailureInfo) -> str:
    number = failure.signal if failure.signal is not None else -(failure.exit_code or 0)
    try:
        name = signals.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    text = f"{_subject(failure)} was killed by signal {number} ({name})"
    if number == signals.SIGKILL:
        text += ", often the out-of-memory killer"
    return text


def _auth_fix(failure: FailureInfo, fix: str) -> str:
    found = _ENV_KEY_NAME.search(" ".join((failure.message, failure.output_tail)))
    if found is None:
        return fix
    return fix.replace("check the API key", f"check the API key in {found.group(1)}", 1)


def last_meaningful_line(text: str) -> str:
    """The last line worth quoting: not blank, not a bare traceback frame marker."""
    for line in reversed(text.splitlines()):
        stripped = line.strip()
        if stripped and stripped not in ("^", "~") and not set(stripped) <= set("^~ "):
            return stripped
    return ""


def _short(text: str) -> str:
    # Redact before cutting: a key cut in half no longer looks like a key.
    clean = redact(text)
    return clean if len(clean) <= _EVIDENCE_LIMIT else clean[: _EVIDENCE_LIMIT - 1] + "…"


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
