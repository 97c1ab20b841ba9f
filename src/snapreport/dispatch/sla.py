"""The "sla.check" handler: escalate an order whose deadline passed, once.

``Notices`` enqueues one "sla.check" per deadline when an order is filed (level 1 at
``due_accept_at``, level 2 at ``due_resolve_at``) and one at a reopen (level 2 at the new
``due_resolve_at``); the outbox runs this handler when each falls due. The escalation itself is
a conditional write (escalation below the level, the order still open or unfinished past the
deadline) that enqueues "order.escalated" in the same transaction: a check that runs twice (two
workers, a retry after a crash) or that a change made stale (accepted, closed, reopened with a
later deadline) changes nothing.
"""

from __future__ import annotations

from snapreport.dispatch.lifecycle import Dispatch
from snapreport.errors import InvalidInput
from snapreport.outbox.base import OutboxHandler, OutboxJob


def sla_handler(dispatch: Dispatch) -> OutboxHandler:
    """The handler of "sla.check" (``notices.SLA_TOPIC``) for the outbox worker."""

    async def check_deadline(job: OutboxJob) -> None:
        number = job.payload.get("order_number")
        level = job.payload.get("level")
        if not isinstance(number, str) or level not in (1, 2) or isinstance(level, bool):
            # a payload we never write: let it fail and be dead-lettered, visibly
            raise InvalidInput(f"sla.check job {job.id} has a bad payload")
        await dispatch.escalate(number, int(level))

    return check_deadline
