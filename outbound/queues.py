"""The RQ queues: one per channel and priority, drained most urgent first."""

from __future__ import annotations

from core.models import Channel

#: AMBER and urgent search first, then result messages, then everything non-urgent.
PRIORITIES = ("urgent", "result", "normal")
#: Writing a started action's outbox comes before sending anything: it feeds the others.
OUTBOX_QUEUE = "outbox"


def queue_names(channels: tuple[Channel, ...] = tuple(Channel)) -> list[str]:
    """Queue names in the order a worker should drain them."""
    return [OUTBOX_QUEUE] + [f"{channel.value}-{priority}" for priority in PRIORITIES
                             for channel in channels]
