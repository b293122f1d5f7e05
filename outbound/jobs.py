"""The RQ jobs: thin and idempotent, carrying ids. The worker (`outbound.worker`) hands each
its Runtime first; everything else comes from the database.

`send_batch` claims its deliveries (`outbound.claim`), sends them within the sender's shared
rate, all messages of the batch concurrently up to that rate, while a thread renews the
claims' lease (`outbound.sender`, `outbound.claim.Lease`), and records every outcome in one
transaction (`outbound.outcomes`). Their queueing: `outbound.queues`.
"""

from __future__ import annotations

from collections import defaultdict

from outbound.callbacks import apply_early
from outbound.claim import Lease, claim
from outbound.fanout import write_outbox
from outbound.outcomes import queue_again, record
from outbound.queues import enqueue
from outbound.runtime import Runtime
from outbound.sender import send_all


def write_action_outbox(runtime: Runtime, action_id: int) -> dict[str, int]:
    """The job: write the outbox chunk by chunk, each chunk queued as soon as it is committed.
    Rows already there are kept, so a retried or resumed job adds only what is missing."""
    connection = runtime.redis_for("writing an outbox")
    result = write_outbox(runtime.writer, action_id, runtime.clock(),
                          lambda batches: enqueue(connection, batches), skip_existing=True)
    return {"deliveries": result.deliveries, "batches": len(result.batches)}


def send_batch(runtime: Runtime, delivery_ids: list[int]) -> dict[str, int]:
    """The job: claim, send at the shared rate, record. Returns counts for RQ's result."""
    claimed = runtime.clock()
    with runtime.writer() as session, session.begin():
        work = claim(session, runtime, delivery_ids, claimed)
    if not work:
        return {"claimed": 0}
    with Lease(runtime.writer, runtime.clock, work, claimed) as lease:
        outcomes = runtime.run(send_all(runtime, work, lease))
    with runtime.writer() as session, session.begin():
        retry = record(session, outcomes, runtime.clock(), runtime.metrics)
    sent = [result for _work, result, _name in outcomes if isinstance(result, str)]
    with runtime.writer() as session, session.begin():
        retry += apply_early(session, runtime.redis_for("sending"), sent, runtime.clock(),
                             runtime.metrics)
    if retry:
        queue_again(runtime, retry)
    counts: dict[str, int] = defaultdict(int)
    for _work, result, _name in outcomes:
        counts["sent" if isinstance(result, str) else "unknown" if result.unknown else
               "retry" if result.retryable else "failed"] += 1
    return {"claimed": len(work), **counts}
