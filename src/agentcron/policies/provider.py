"""Which provider a task calls, and when a failure is news about the provider.

Pure functions: the engine asks them per claim and per ended run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from agentcron.model import ErrorClass, Finished, TaskSpec

# Refusals that speak for every caller of the provider.
COOLING_CLASSES = (ErrorClass.RATE_LIMITED, ErrorClass.OVERLOADED)
PROBE_LEASE = timedelta(minutes=2)  # how long other tasks wait on one probing run


def provider_of(spec: TaskSpec) -> tuple[str, str] | None:
    """(key, name) of the provider ``spec`` calls, or None. ``provider:`` names it
    outright; an ``llm`` task's base URL host and key variable, or an ``http`` task's
    URL host, identify it otherwise (two keys on one host are two accounts)."""
    if spec.provider:
        return f"name:{spec.provider}", spec.provider
    if spec.llm is not None:
        name = urlsplit(spec.llm.base_url).hostname or spec.llm.base_url
        return f"llm:{name}:{spec.llm.api_key_env or ''}", name
    if spec.http is not None:
        host = urlsplit(spec.http.url).hostname
        if host:
            return f"http:{host}", host
    return None


def cooldown_until(finished: Finished) -> datetime | None:
    """Until when ``finished`` says its provider must not be called, or None if the
    end says nothing about the provider: a rate limit or overload being retried (until
    its Retry-After, else the task's own retry time), or an exhausted quota whose reset
    the provider declared."""
    outcome, c = finished.outcome, finished.classification
    asked = (
        finished.finished_at + timedelta(seconds=c.retry_after)
        if c is not None and c.retry_after
        else None
    )
    if outcome.error_class in COOLING_CLASSES:
        return asked or outcome.next_attempt_at
    if outcome.error_class is ErrorClass.QUOTA_EXHAUSTED:
        return asked
    return None
