"""Delivering a run's kept output again, by hand, once its delivery gave up.

A delivery tries on its own for as long as ``delivery_backoff`` says (60 s, 5 min,
30 min by default) and then gives up, told once, the output kept. The owner who then
fixes the target (a chat removed the bot, a webhook moved) had no way to send that
output but to copy the file by hand (outside-in probe). This queues the deliveries
that gave up again, from their first attempt; the daemon's delivery worker sends
them, from the kept file, as it sends any delivery, and tells the end as it does.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from agentcron._service.base import ConflictError, iso
from agentcron._service.history import HistoryMixin
from agentcron.model import DeliveryStatus, Incident, SlotStatus

_STILL_TRYING = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


class RedeliveryMixin(HistoryMixin):
    def redeliver(self, run_id: int) -> dict[str, Any]:
        """Deliver run ``run_id``'s kept output again to the targets it could not
        reach; the run as it then stands. Refused, with the reason, when there is
        nothing to deliver again: no targets, still trying, every target reached, or
        the kept file gone."""
        slot = self._slot(run_id)
        deliveries = self.store.deliveries(slot_id=run_id)
        name = f"run {run_id} of {slot.task}"
        if not deliveries:
            if slot.status is not SlotStatus.SUCCEEDED:
                why = f"it did not succeed ({slot.status.value}): only a success's output is"
            else:
                why = "its task had no `deliver` targets when it ran: no output of it is"
            raise ConflictError(f"{name} has nothing to deliver: {why} delivered", field="run_id")
        failed = [d for d in deliveries if d.status is DeliveryStatus.FAILED]
        if not failed:
            trying = [d for d in deliveries if d.status in _STILL_TRYING]
            if trying:
                rec = self.store.get_task(slot.task)
                zone = self._zone(rec.spec) if rec is not None else None
                times = [d.next_attempt_at for d in trying if d.next_attempt_at is not None]
                when = f"; next attempt at {iso(min(times), zone)}" if times else ""
                raise ConflictError(
                    f"{name} is still being delivered (to {trying[0].target_key}{when}): "
                    "it needs no help",
                    field="run_id",
                )
            raise ConflictError(
                f"{name} was delivered to every target "
                f"({', '.join(d.target_key for d in deliveries)}): nothing to deliver again",
                field="run_id",
            )
        gone = next((d.output_path for d in failed if _gone(d.output_path)), None)
        if gone is not None:
            raise ConflictError(
                f"{name}: its kept output {gone} is gone (removed by keep_outputs or by "
                "hand), so it cannot be delivered again",
                field="run_id",
            )
        now = self.clock.now()
        again = self.store.redeliver(run_id, now, self._asked_again(slot.task, len(failed), now))
        if again:
            targets = sorted(d.target_key for d in again)
            self._audit(
                "run.redeliver",
                slot.task,
                {"run": run_id, "failed": targets},
                {"run": run_id, "pending": targets},
            )
            self._changed()
        return self.run_detail(run_id, with_output=False)

    def _asked_again(self, task: str, deliveries: int, now: datetime) -> list[Incident]:
        """The task's open delivery incident, having learnt that ``deliveries`` of this
        run (one per target: it counts given-up deliveries so) are tried again (see
        :func:`~agentcron.notify.incidents.asked_again`); written with the redelivery
        itself, so a failure leaves neither (queued, then refused the incident's write,
        the command reported an error for a redelivery that was on its way)."""
        from agentcron.model import IncidentKind
        from agentcron.notify.incidents import asked_again

        current = self.store.open_incidents(task).get(IncidentKind.DELIVERY)
        return [] if current is None else [asked_again(current, deliveries, now)]


def _gone(path: str | None) -> bool:
    """Whether a delivery's kept file is missing (no path: the run kept none, which is
    delivered as such)."""
    return path is not None and not Path(path).is_file()
