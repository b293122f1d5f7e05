"""Sending a claimed batch: every message of it concurrently, each in its own slot of the
sender's shared rate (`outbound.throttle`), calls within the trunk's cap on calls in progress.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import update

from core.logs import bind_ids
from core.metrics import Metrics
from core.models import Channel, Delivery, DeliveryStatus
from outbound.claim import LEASE_MARGIN, Work
from outbound.providers import Provider, ProviderError
from outbound.runtime import Runtime
from outbound.throttle import CallSlots, SendWindow, call_token

MAX_IN_FLIGHT = 200
CALL_SLOT_POLL = 0.2

#: What became of one message: the provider's id or its error, and the provider's name.
Outcome = tuple[Work, str | ProviderError, str]


async def send_all(runtime: Runtime, work: list[Work]) -> list[Outcome]:
    """Send WORK, each channel at its sender's rate; the outcome of every message."""
    by_channel: dict[Channel, list[Work]] = defaultdict(list)
    for item in work:
        by_channel[item.channel].append(item)
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    providers = {channel: runtime.provider(channel) for channel in by_channel}
    slots = runtime.call_slots
    tasks = []
    for channel, items in by_channel.items():
        provider = providers[channel]
        reservation = runtime.throttle.reserve(runtime.sender_key(channel),
                                               runtime.rate(channel), len(items))
        extend_lease(runtime, [item.delivery_id for item in items],
                     reservation.slot(len(items)))
        rate = runtime.rate(channel)
        gate = _Gate(runtime.send_window, runtime.sender_key(channel), rate) if rate > 0 else None
        for index, item in enumerate(items):
            capped = slots if channel == Channel.VOICE else None
            tasks.append(_send_one(provider, item, reservation.slot(index), in_flight, capped,
                                   gate, runtime.metrics))
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for provider in {id(p): p for p in providers.values()}.values():
            await runtime.release(provider)


def extend_lease(runtime: Runtime, ids: list[int], last_slot: float) -> None:
    """Hold the claim until this batch's last slot (which other workers' reservations may
    have pushed far ahead) plus the usual margin, so reclaim never takes a message that a
    live worker is still waiting to send."""
    until = datetime.fromtimestamp(last_slot, UTC) + LEASE_MARGIN
    with runtime.writer() as session, session.begin():
        session.execute(update(Delivery)
                        .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.SENDING,
                               Delivery.next_attempt_at < until)
                        .values(next_attempt_at=until))


@dataclass(frozen=True)
class _Gate:
    """The sliding-second cap of one sender, checked just before each send."""

    window: SendWindow
    sender: str
    rate: float

    async def wait(self, member: str) -> None:
        await self.window.wait(self.sender, self.rate, member)


async def _send_one(provider: Provider, item: Work, at: float, in_flight: asyncio.Semaphore,
                    slots: CallSlots | None, gate: _Gate | None = None,
                    metrics: Metrics | None = None) -> Outcome:
    # a task of its own (gather), with its own copy of the context: its lines name the message
    bind_ids(delivery_id=item.delivery_id, action_id=item.message.action_id)
    delay = at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    waited = max(0.0, delay)
    token = call_token(item.delivery_id)
    while slots is not None and not slots.acquire(token):
        await asyncio.sleep(CALL_SLOT_POLL)  # the trunk is full: wait for a call to end
    async with in_flight:
        if gate is not None:  # as close to the request as it gets
            before = time.monotonic()
            await gate.wait(f"{token}:{time.time_ns()}")
            waited += time.monotonic() - before
        metrics = metrics or Metrics()
        metrics.waited(item.channel, waited)
        start = time.monotonic()
        try:
            result = await provider.send(item.message)
        except ProviderError as error:
            metrics.provider_request(provider.name, item.channel, time.monotonic() - start, error)
            if slots is not None:
                slots.release(token)
            return item, error, provider.name
        metrics.provider_request(provider.name, item.channel, time.monotonic() - start)
        return item, result, provider.name
