"""Plain-language words for failures: the owner's sentence and, for permanent ones, the fix.

The owner reads these at 7 a.m. on a phone. Each failure gets one sentence: the
plain explanation in their terms, fitted to the kind of action that failed (a shell
command has no "provider"), then, after a colon, the decisive line that shows what
happened: the provider's own error message from an HTTP or LLM error body, the
exception type and message of a Python traceback, else the last meaningful line of
output::

    the command exited with code 1: json.decoder.JSONDecodeError: Expecting property …
    the API quota or credit is used up (HTTP 429 insufficient_quota): You exceeded …
    the command exited with code 75 (EX_TEMPFAIL: a temporary failure, it asked to be
    retried): upstream 503

The runner stores this sentence as the run's ``error`` and the owner's message starts
with it, so what the CLI shows and what the owner was told are the same words.
"""

from __future__ import annotations

import json
import re
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
_EVIDENCE_LIMIT = 200

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
# Nor has a program that called a service of its own (a command, a function).
_PROGRAM_FIXES: Mapping[ErrorClass, str] = {
    E.BAD_REQUEST: "check what the program sends (parameters, headers, body)",
    E.NOT_FOUND: "check the URL the program asks for",
}

# A program that called services of its own, described from its output: "the command
# exited with code 1 (a service it calls is rate-limiting requests)".
_CALLED = "a service it calls"

_EXIT_TEXT: Mapping[int, tuple[str, str | None]] = {
    64: (
        "{subject} exited with code 64 (EX_USAGE: it says it was called wrongly)",
        "check the command's arguments",
    ),
    78: (
        "{subject} exited with code 78 (EX_CONFIG: it reports a configuration error)",
        "check the program's configuration",
    ),
    124: ("{subject} was stopped by timeout(1) (exit code 124)", None),
    126: (
        "{subject} was found but is not executable (exit code 126)",
        "make the file executable (chmod +x) or run it through its interpreter",
    ),
    127: (
        "{subject} was not found (exit code 127)",
        "check that the program is installed and on PATH, or give its full path",
    ),
    rules.EX_TEMPFAIL: (
        "{subject} exited with code 75 (EX_TEMPFAIL: a temporary failure, it asked to be retried)",
        None,
    ),
}

_CREDENTIALS_FIX = (
    "check the credentials it uses (API key, token): they may be missing, mistyped, "
    "revoked or lack access"
)
_CRASH_FIX = "fix the crash (the last lines of output may show where), then trigger the task again"
_LIMIT_FIX = "raise the limit or make the program need less, then trigger the task again"

_ENV_KEY_NAME = re.compile(r"\b([A-Z][A-Z0-9_]*_(?:API_KEY|KEY|TOKEN))\b")
# Keys under which JSON error bodies carry their human-readable message.
_MESSAGE_KEYS = ("message", "detail", "error_description", "error", "msg")


# Only a model provider is known to want an API key and to serve models; any other
# server is told of as what it surely is.
_NOT_A_MODEL_PROVIDER: Mapping[ErrorClass, str] = {
    E.AUTH: "{who} rejected the credentials it was sent",
    E.NOT_FOUND: "{who} does not know the requested URL",
}


# What the llm action found wrong with an answer it got (it sets ``known_class``), as
# words its message carries, with the fix of that finding: the fix of its class in
# general ("check the task's configuration (command, module path, …)") would not fit.
NOT_A_COMPLETION = "not with an OpenAI-style chat completion"
ANSWER_TOO_LARGE = "was larger than"
# (words in the message, what to say instead of the class's words or None, the fix)
REDIRECT = "a redirect to"
CONTENT_FILTERED = "the provider's content filter withheld the answer"
NO_TEXT_WITHIN_MAX_TOKENS = "before writing any text"
_LLM_FINDINGS: tuple[tuple[str, str | None, str], ...] = (
    (
        CONTENT_FILTERED,
        "the model provider refused to answer",
        "change the prompt or its context so that it does not trip the provider's "
        "content filter, then trigger the task again",
    ),
    (
        NO_TEXT_WITHIN_MAX_TOKENS,
        "the model gave no answer",
        "raise llm.max_tokens (a reasoning model may spend them all thinking before it writes)",
    ),
    (
        REDIRECT,
        None,
        "set base_url to the address the redirect names (https:// rather than http://?)",
    ),
    (
        ANSWER_TOO_LARGE,
        "the model provider's answer was too large to use",
        "check base_url: it should be the provider's API, whose answers are far smaller; "
        "a gateway or page that streams without end answers like this",
    ),
    (
        NOT_A_COMPLETION,
        None,
        "check base_url (it should end in /v1 for most providers) and that the provider "
        "speaks the chat-completions API",
    ),
)
_LLM_CONFIG_FIX = "check the task's llm section (base_url, model, api_key_env)"


def _llm_finding(failure: FailureInfo) -> tuple[str | None, str] | None:
    """What to say instead of the class's words (None: its words fit), and the fix."""
    for words, text, fix in _LLM_FINDINGS:
        if words in failure.message:
            return text, fix
    return None


def explain(error_class: ErrorClass, *, who: str = "the provider") -> tuple[str, str | None]:
    """The generic explanation of a class and, for permanent classes, the fix.

    ``who`` is the other side in the owner's terms ("the model provider", "the
    server", "a service it calls"); only a provider is said to have an API key.
    """
    template = _EXPLANATIONS[error_class]
    if "provider" not in who:
        template = _NOT_A_MODEL_PROVIDER.get(error_class, template)
    text = template.format(who=who)
    return text, (None if error_class.transient else _FIXES.get(error_class))


def describe(
    failure: FailureInfo, error_class: ErrorClass, basis: Basis, evidence: str | None = None
) -> tuple[str, str | None]:
    """The owner's sentence and the fix for one classified failure, redacted, one line.

    ``evidence`` is what decided the class when the failure itself does not say it
    (the output line a pattern matched, the user rule that fired).
    """
    text, fix = explain(error_class, who=_who(failure))
    if failure.action == "http" and error_class in _HTTP_FIXES:
        fix = _HTTP_FIXES[error_class]
    elif "provider" not in _who(failure):
        fix = _CREDENTIALS_FIX if error_class is E.AUTH else _PROGRAM_FIXES.get(error_class, fix)
    decisive = decisive_line(failure, evidence if basis == "output" else None)
    exit_code = failure.exit_code
    if basis == "rule":
        text = f"{text} (the task's classify rule {evidence!r} matched)"
        decisive = _rule_line(failure, evidence) or decisive
    elif basis == "known":
        finding = _llm_finding(failure) if failure.action == "llm" else None
        if finding is not None and finding[0] is not None:
            text = finding[0]
        text, decisive = _known_text(failure, error_class, text)
        if failure.action == "llm" and not error_class.transient:
            if error_class is E.CONFIG_ERROR:
                fix = _LLM_CONFIG_FIX
            if finding is not None:
                fix = finding[1]
    elif basis == "status" and failure.http_status is not None:
        text, fix = _http_text(failure, error_class, text, fix)
        decisive = _status_line(failure)
    elif basis == "code":
        text = f"{text} (provider error {failure.provider_code})"
        decisive = _provider_message(failure.body) or failure.message or decisive
    elif basis == "signal":
        text, fix = _signal_text(failure, error_class)
    elif basis == "exit" and exit_code is not None and exit_code in _EXIT_TEXT:
        template, exit_fix = _EXIT_TEXT[exit_code]
        text = template.format(subject=_subject(failure))
        if exit_code in (126, 127) and failure.message:
            decisive = failure.message  # names the program that could not be run
        if exit_fix is not None and not error_class.transient:
            fix = exit_fix
    elif error_class is E.CODE_ERROR and basis in ("type", "output", "default"):
        text, decisive = _code_error_text(failure, decisive)
    elif error_class is E.CONFIG_ERROR and _is_missing_module(failure, decisive):
        text = "a Python module could not be imported"
        fix = "install the missing package or fix the module path"
        if exit_code is not None:
            text = f"{_subject(failure)} exited with code {exit_code} ({text})"
    elif exit_code is not None and basis in ("output", "default"):
        # A program's output named the cause: it talked to a service of its own.
        said = explain(error_class, who=_CALLED)[0]
        if exit_code == rules.EX_TEMPFAIL:
            said = f"EX_TEMPFAIL, a temporary failure: {said}"
        text = f"{_subject(failure)} exited with code {exit_code} ({said})"
    if error_class is E.AUTH and fix is not None:
        fix = _auth_fix(failure, fix)
    sentence = _with_line(text, decisive)
    return _one_line(sentence, EXPLANATION_LIMIT), (
        _one_line(fix, EXPLANATION_LIMIT) if fix else None
    )


def decisive_line(failure: FailureInfo, evidence: str | None = None) -> str | None:
    """The line that shows what happened, most telling first: the provider's error
    message, the line that decided the class, the exception (raised, or closing a
    traceback in the output), the last meaningful line of output."""
    provider = _provider_message(failure.body)
    if provider:
        return provider
    if evidence:
        return evidence
    if failure.exception_types and failure.message:
        return failure.message
    closing = rules.traceback_exception_line(failure.output_tail)
    if closing:
        return closing
    return last_meaningful_line(failure.output_tail) or None


def _with_line(text: str, line: str | None) -> str:
    """``text: line``, unless the line says nothing the text does not already say."""
    if not line:
        return text
    short = _short(line)
    if short.lower() in text.lower():
        return text
    return f"{text}: {short}"


def _who(failure: FailureInfo) -> str:
    module = (failure.exception_module or "").split(".")[0]
    if failure.action == "llm" or module in ("openai", "anthropic"):
        return "the model provider"
    if failure.action == "http" or failure.http_status is not None:
        return "the server"
    if failure.action in ("command", "precheck"):
        return f"a service the {failure.action} calls"
    return "a service the function calls"


def _subject(failure: FailureInfo) -> str:
    """What ran as a process and ended: the command, the precheck, a python worker."""
    if failure.action == "precheck":
        return "the precheck"
    if failure.action == "python":
        return "the python worker running the function"
    return "the command"


def _known_text(failure: FailureInfo, error_class: ErrorClass, text: str) -> tuple[str, str | None]:
    """The runner's own words: it enforced the timeout or lost the worker."""
    if error_class is E.WORKER_LOST and failure.message:
        return failure.message, None  # a sentence of ours ("the daemon stopped while …")
    if error_class is E.TIMEOUT:
        what = "the precheck" if failure.action == "precheck" else "the run"
        # an inline call is not stopped (it cannot be): "was stopped (… cannot be
        # killed and may still be running)" said both (probe)
        unstopped = "cannot be killed" in failure.message
        text = f"{what} took longer than its timeout" + ("" if unstopped else " and was stopped")
        if failure.message:
            text = f"{text} ({failure.message})"
        # What it was doing when it was stopped.
        return text, last_meaningful_line(failure.output_tail) or None
    if failure.message:
        text = f"{text} ({failure.message})"
    return text, None


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
    if code is not None and code == str(status):
        code = None  # OpenRouter's 402 carries code 402: "(HTTP 402 402)" said it twice
    return f"{text} (HTTP {status}" + (f" {code})" if code else ")"), fix


def _status_line(failure: FailureInfo) -> str | None:
    """The provider's message, else a plain-text body's first line, else what the
    raised exception said (an SDK error without a body)."""
    provider = _provider_message(failure.body)
    if provider:
        return provider
    body = (failure.body or "").strip()
    if body and not body.startswith(("<", "{", "[")):
        return last_meaningful_line(body.splitlines()[0])
    if failure.exception_types and failure.message:
        return failure.message
    return None


def _provider_message(body: str | None) -> str | None:
    """The human-readable message of a JSON error body: OpenAI's and Anthropic's
    ``error.message``, FastAPI's ``detail``, OAuth's ``error_description``, a bare
    ``{"error": "…"}``."""
    if not body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for obj in (data.get("error"), data):
        if not isinstance(obj, dict):
            continue
        for key in _MESSAGE_KEYS:
            value = obj.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _rule_line(failure: FailureInfo, pattern: str | None) -> str | None:
    """The line the owner's classify rule matched in."""
    if not pattern:
        return None
    for text in (failure.output_tail, failure.body, failure.message):
        if not text:
            continue
        try:
            found = re.search(pattern, text)
        except re.error:  # checked when the config was loaded: cannot happen for a
            return None  # loaded task; without the line the sentence is still whole
        if found is not None:
            start = text.rfind("\n", 0, found.start()) + 1
            end = text.find("\n", found.end())
            return text[start : end if end != -1 else len(text)].strip() or None
    return None


def _code_error_text(failure: FailureInfo, line: str | None) -> tuple[str, str | None]:
    """The task's own failure: who failed, and the line that shows how."""
    if failure.exit_code is not None:
        return f"{_subject(failure)} exited with code {failure.exit_code}", line
    if failure.exception_types:
        head = "the function raised" if failure.action == "python" else "the task raised"
        return f"{head} {_short(failure.message or line or 'an exception')}", None
    if failure.http_status is not None:
        return f"{_who(failure)} answered HTTP {failure.http_status}", line
    what = {
        "command": "the command failed",
        "precheck": "the precheck failed",
        "python": "the function failed",
        "http": "the request failed",
        "llm": "the model call failed",
    }.get(failure.action, "the task failed")
    return what, line or (failure.message or None)


def _is_missing_module(failure: FailureInfo, line: str | None) -> bool:
    if "ModuleNotFoundError" in failure.exception_types:
        return True
    return bool(line) and (line or "").startswith("ModuleNotFoundError")


def _signal_text(failure: FailureInfo, error_class: ErrorClass) -> tuple[str, str | None]:
    """A process ended by a signal agentcron did not send; see :mod:`rules` for the
    rule (a crash of its own making is permanent, a kill from outside is retried)."""
    number = rules.signal_of(failure.exit_code, failure.signal) or 0
    name = rules.signal_label(number)
    subject = _subject(failure)
    by_shell = failure.signal is None and (failure.exit_code or 0) > 0
    if error_class is not E.WORKER_LOST:
        meaning = rules.CRASH_SIGNALS.get(number, "a signal of its own making")
        # A crash proper, or an end the program brought on itself another way.
        verb = "crashed with" if number in rules.FAULT_SIGNALS else "was ended by"
        if by_shell:
            text = (
                f"{subject} exited with code {failure.exit_code} (128 + {number}: a program "
                f"it ran {verb} {name}, {meaning})"
            )
        else:
            text = f"{subject} {verb} {name} (signal {number}, {meaning})"
        return text, (_LIMIT_FIX if number in rules.LIMIT_SIGNALS else _CRASH_FIX)
    sender = rules.STOP_SIGNALS.get(number)
    killed = f"killed by {name} (signal {number}) from outside agentcron"
    if by_shell:
        code = failure.exit_code
        text = f"{subject} exited with code {code} (128 + {number}: a program it ran was {killed})"
    else:
        text = f"{subject} was {killed}"
    return (f"{text}, {sender}" if sender else text), None


def _auth_fix(failure: FailureInfo, fix: str) -> str:
    """Name the variable when the failure does ("set OPENAI_API_KEY")."""
    found = _ENV_KEY_NAME.search(" ".join((failure.message, failure.output_tail)))
    if found is None:
        return fix
    if fix == _CREDENTIALS_FIX:
        fix = _FIXES[E.AUTH]
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
    clean = " ".join(redact(text).split())
    return clean if len(clean) <= _EVIDENCE_LIMIT else clean[: _EVIDENCE_LIMIT - 1] + "…"


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
