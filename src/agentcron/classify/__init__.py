"""Failure classification: what went wrong, is it weather or a bug, what to tell the owner.

``failure_from_exception`` is safe to import in worker processes: nothing in this
package imports an SDK.
"""

from agentcron.classify.classifier import classify
from agentcron.classify.explain import explain
from agentcron.classify.extract import failure_from_exception

__all__ = ["classify", "explain", "failure_from_exception"]
