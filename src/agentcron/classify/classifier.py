"""Decide the class of one failure: transient (retry) or permanent (tell the owner).

The evidence is consulted from the most to the least specific, and the first that
speaks decides:

1. the task's own ``classify`` rules (the owner knows their program best);
2. ``known_class`` from the runner, which enforced the timeout or lost the worker;
3. the HTTP status, refined by the provider's error code and wording, or the
   provider's error code alone when it came without an error status;
4. the exception type chain, then the exception message's words;
5. the exit code (and signal) of a command or precheck;
6. words in the last lines of output;
7. otherwise ``code_error``: an unexplained failure of the task's own code is
   treated as permanent, because retrying a bug only repeats the failure and
   delays the message the owner needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from agentcron.classify import rules
from agentcron.classify.explain import Basis, describe
from agentcron.model.enums import ErrorClass
from agentcron.model.failure import Classification, FailureInfo
from agentcron.model.task import ClassifyRule
from agentcron.policies.retry import parse_retry_after

E = ErrorClass
_OUTPUT_LINES = 40

Verdict = tuple[ErrorClass, Basis, str | None]


def classify(
    failure: FailureInfo, rules: Sequence[ClassifyRule] = (), now: datetime | None = None
) -> Classification:
    """Classify ``failure``; ``now`` dates an HTTP-date Retry-After (default: system time)."""
    error_class, basis, evidence = _decide(failure, rules)
    explanation, fix = describe(failure, error_class, basis, evidence)
    retry_after = None
    if failure.headers:
        retry_after = parse_retry_after(failure.headers, now or datetime.now(UTC))
    return Classification(
        error_class=error_class, explanation=explanation, fix=fix, retry_after=retry_after
    )


def _decide(failure: FailureInfo, user_rules: Sequence[ClassifyRule]) -> Verdict:
    verdict = _by_user_rule(failure, user_rules)
    if verdict is not None:
        return verdict
    if failure.known_class is not None:
        return failure.known_class, "known", None
    verdict = _by_status(failure)
    if verdict is not None:
        return verdict
    code = (failure.provider_code or "").lower()
    if code in rules.PROVIDER_CODE_CLASSES:
        return rules.PROVIDER_CODE_CLASSES[code], "code", f"provider error {code}"
    if failure.exception_types:
        return _by_exception(failure)
    if failure.exit_code is not None or failure.signal is not None:
        return _by_exit(failure)
    found = _by_output(failure)
    if found is not None:
        return found[0], "output", found[1]
    return E.CODE_ERROR, "default", None


def _by_user_rule(failure: FailureInfo, user_rules: Sequence[ClassifyRule]) -> Verdict | None:
    if not user_rules:
        return None
    text = "\n".join(p for p in (failure.message, failure.output_tail, failure.body) if p)
    for rule in user_rules:
        try:
            if re.search(rule.match, text):
                return rule.class_, "rule", rule.match
        except re.error:
            continue  # validated at load time; a bad rule must not break classification
    return None


def _by_status(failure: FailureInfo) -> Verdict | None:
    status = failure.http_status
    if status is None:
        return None
    if status >= 400:
        text = " ".join(p for p in (failure.body, failure.message) if p)
        return rules.status_class(status, failure.provider_code, text), "status", None
    if failure.action == "http" and not failure.exception_types:
        # A 2xx/3xx outside the task's `expect` list: the request is wrong, not the weather.
        return E.BAD_REQUEST, "status", None
    return None


def _by_exception(failure: FailureInfo) -> Verdict:
    error_class = rules.type_class(failure.exception_types)
    if error_class is E.RATE_LIMITED and _says_quota(failure):
        error_class = E.QUOTA_EXHAUSTED
    if error_class is not None:
        return error_class, "type", None
    # An exception we do not know (RuntimeError, a library's own base class): its
    # message may still say what happened. Only the message, not the traceback,
    # whose source lines are full of words like "timeout=30".
    found = rules.output_match(failure.message)
    if found is not None:
        return found[0], "output", found[1]
    return E.CODE_ERROR, "default", None


def _by_exit(failure: FailureInfo) -> Verdict:
    """Exit codes first where they are unambiguous, then signals, then the output.

    Exit code 75 (EX_TEMPFAIL) is the program's own statement that the failure is
    temporary and worth retrying, so it is always transient: the output picks the
    transient class when it names one ("429 Too Many Requests" -> rate_limited),
    and otherwise it is ``server_error``, the class whose meaning ("the other side
    failed for now; back off and try again") fits an unspecified temporary
    failure best. Permanent-sounding output does not override the program's word.

    A process ended by a signal the runner did not send (it would have set
    ``known_class``), directly or as a shell's exit code 128 + n, is classified by
    the signal (:func:`rules.signal_class`): a crash of the program's own making
    (SIGSEGV, SIGABRT, …) is ``code_error``; a kill from outside (the OOM killer's
    SIGKILL, an operator's SIGTERM) is ``worker_lost`` and retried, as for a python
    worker killed the same way.
    """
    code = failure.exit_code
    if code == rules.EX_TEMPFAIL:
        found = _by_output(failure)
        if found is not None and found[0].transient:
            return found[0], "output", found[1]
        return E.SERVER_ERROR, "exit", None
    if code is not None and code in rules.EXIT_CODE_CLASSES:
        return rules.EXIT_CODE_CLASSES[code], "exit", None
    signum = rules.signal_of(code, failure.signal)
    if signum is not None:
        return rules.signal_class(signum), "signal", None
    found = _by_output(failure)
    if found is not None:
        return found[0], "output", found[1]
    return E.CODE_ERROR, "default", None


def _by_output(failure: FailureInfo) -> tuple[ErrorClass, str] | None:
    """Class and evidence line from the last output lines, or None if they say nothing.

    A Python traceback in the output names its exception type, which is more
    reliable than loose words, so it is read first.
    """
    tail = "\n".join(failure.output_tail.splitlines()[-_OUTPUT_LINES:])
    text = "\n".join(p for p in (tail, failure.message) if p)
    exception_line = rules.traceback_exception_line(text)
    if exception_line is not None:
        named = rules.EXCEPTION_LINE.match(exception_line)
        type_name = named.group(1) if named else ""
        error_class = rules.type_class([type_name]) if type_name else None
        if error_class is E.RATE_LIMITED and rules.QUOTA_WORDING.search(exception_line):
            error_class = E.QUOTA_EXHAUSTED
        if error_class is not None:
            return error_class, exception_line
        found = rules.output_match(exception_line)
        return found if found is not None else (E.CODE_ERROR, exception_line)
    return rules.output_match(text)


def _says_quota(failure: FailureInfo) -> bool:
    if (failure.provider_code or "").lower() in rules.QUOTA_CODES:
        return True
    text = " ".join(p for p in (failure.body, failure.message) if p)
    return bool(rules.QUOTA_WORDING.search(text))
