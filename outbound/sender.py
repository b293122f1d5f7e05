"""Sending a claimed batch: every message of it concurrently, each in its own slot of the
sender's shared rate (`outbound.throttle`), calls within the trunk's cap on calls in progress,
and each only while its claim's lease holds (`outbound.claim.Lease`).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass

from core.models import Channel
from outbound.claim import Lease, Work
from outbound.providers import Provider, ProviderError
from outbound.runtime import Runtime
from outbound.throttle import CallSlots, SendWindow, call_token

MAX_IN_FLIGHT = 200
CALL_SLOT_POLL = 0.2

#: What became of one message: the provider's id or its error, and the provider's name.
Outcome = tuple[Work, str | ProviderError, str]


class LeaseLost(ProviderError):
    """Not sent: the claim's lease was taken back before its turn came."""

    def __init__(self) -> None:
        super().__init__(True, "lease_lost", detail="the claim was taken back; not sent")


async def send_all(runtime: Runtime, work: list[Work], lease: Lease | None = None) -> list[Outcome]:
    """Send WORK, each channel at its sender's rate, each message only while LEASE holds its
    claim; the outcome of every message."""
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
        rate = runtime.rate(channel)
        gate = _Gate(runtime.send_window, runtime.sender_key(channel), rate) if rate > 0 else None
        for index, item in enumerate(items):
            capped = slots if channel == Channel.VOICE else None
            tasks.append(_send_one(provider, item, reservation.slot(index), in_flight, capped,
                                   gate, lease))
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for provider in {id(p): p for p in providers.values()}.values():
            await runtime.release(provider)


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
                    lease: Lease | None = None) -> Outcome:
    delay = at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    if lease is not None and not await lease.wait(item.delivery_id):
        return item, LeaseLost(), provider.name
    token = call_token(item.delivery_id)
    while slots is not None and not slots.acquire(token):
        await asyncio.sleep(CALL_SLOT_POLL)  # the trunk is full: wait for a call to end
    async with in_flight:
        if gate is not None:  # as close to the request as it gets
            await gate.wait(f"{token}:{time.time_ns()}")
        if lease is not None and not lease.holds(item.delivery_id):
            if slots is not None:  # a wait for a line or the rate outlasted the claim
                slots.release(token)
            return item, LeaseLost(), provider.name
        try:
            return item, await provider.send(item.message), provider.name
        except ProviderError as error:
            if slots is not None:
                slots.release(token)
            return item, error, provider.name
