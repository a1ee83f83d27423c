"""Policies that turn facts into decisions (retry now, later, or never)."""

from agentcron.policies.retry import RetryDecision, backoff_delay, decide_retry, parse_retry_after

__all__ = ["RetryDecision", "backoff_delay", "decide_retry", "parse_retry_after"]
