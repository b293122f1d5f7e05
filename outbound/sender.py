"""Sending a claimed batch: every message of it concurrently, each in its own slot of the
sender's shared rate (`outbound.throttle`), calls within the trunk's cap on calls in progress,
and each only while its claim's lease holds (`outbound.claim.Lease`) and the provider's
breaker is closed (`outbound.breaker`).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass

import redis

from core.logs import bind_ids
from core.metrics import Metrics
from core.models import Channel
from outbound.breaker import Breakers
from outbound.claim import Lease, Work
from outbound.providers import Provider, ProviderError
from outbound.runtime import Runtime
from outbound.throttle import CallSlots, SendWindow, call_token

MAX_IN_FLIGHT = 200
CALL_SLOT_POLL = 0.2

#: What became of one message: the provider's id or its error, and the provider's name.
Outcome = tuple[Work, str | ProviderError, str]


class NotSent(ProviderError):
    """Never handed to the provider: the claim was taken back before its turn came, or the
    shared rate limits (in Redis) could not be reached. Queued again; the attempt does not
    count."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(True, code, detail=detail)


class HeldBack(NotSent):
    """Not taken: the provider refused service as a whole, or its breaker was open, so no
    request went out. Tried again at UNTIL (a Unix time: when the breaker closes) or, where
    the breaker is still closed, after the usual backoff; the attempt does not count."""

    def __init__(self, detail: str, until: float | None) -> None:
        super().__init__("provider_unavailable", detail)
        self.until = until


def _lease_lost() -> NotSent:
    return NotSent("lease_lost", "the claim was taken back")


def _no_limits(exc: redis.RedisError) -> NotSent:
    return NotSent("no_rate_limits", f"Redis: {type(exc).__name__}")


async def send_all(runtime: Runtime, work: list[Work],
                   lease: Lease | None = None) -> list[Outcome]:
    """Send WORK, each channel at its sender's rate, each message only while LEASE holds its
    claim; the outcome of every message. A batch that fails all the same leaves none of its
    sends behind to go out later."""
    by_channel: dict[Channel, list[Work]] = defaultdict(list)
    for item in work:
        by_channel[item.channel].append(item)
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    providers = {channel: runtime.provider(channel) for channel in by_channel}
    slots = runtime.call_slots
    outcomes: list[Outcome] = []
    tasks: list[asyncio.Future[Outcome]] = []
    for channel, items in by_channel.items():
        provider = providers[channel]
        until = runtime.breakers.held_until(provider.name, channel)
        if until is not None:  # not even a slot of the rate for them
            runtime.metrics.sends_held_back(provider.name, channel, len(items))
            outcomes += [(item, HeldBack("breaker open", until), provider.name)
                         for item in items]
            continue
        rate = runtime.rate(channel)
        try:
            reservation = runtime.throttle.reserve(runtime.sender_key(channel), rate,
                                                   len(items))
        except redis.RedisError as exc:
            outcomes += [(item, _no_limits(exc), provider.name) for item in items]
            continue
        gate = _Gate(runtime.send_window, runtime.sender_key(channel), rate) if rate > 0 else None
        for index, item in enumerate(items):
            capped = slots if channel == Channel.VOICE else None
            tasks.append(asyncio.ensure_future(_send_one(
                provider, item, reservation.slot(index), in_flight, capped, gate, lease,
                runtime.metrics, runtime.breakers)))
    try:
        return outcomes + list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:  # left pending, they would send whenever the loop next runs
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
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
                    lease: Lease | None = None, metrics: Metrics | None = None,
                    breakers: Breakers | None = None) -> Outcome:
    # a task of its own, with its own copy of the context: its lines name the message
    bind_ids(delivery_id=item.delivery_id, action_id=item.message.action_id)
    delay = at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    waited = max(0.0, delay)
    if lease is not None and not await lease.wait(item.delivery_id):
        return item, _lease_lost(), provider.name
    metrics = metrics or Metrics()
    breakers = breakers or Breakers(metrics)
    if (until := breakers.held_until(provider.name, item.channel)) is not None:
        metrics.sends_held_back(provider.name, item.channel)
        return item, HeldBack("breaker open", until), provider.name
    token = call_token(item.delivery_id)
    try:
        while slots is not None and not slots.acquire(token):
            await asyncio.sleep(CALL_SLOT_POLL)  # the trunk is full: wait for a call to end
    except redis.RedisError as exc:
        return item, _no_limits(exc), provider.name
    async with in_flight:
        try:
            if gate is not None:  # as close to the request as it gets
                before = time.monotonic()
                await gate.wait(f"{token}:{time.time_ns()}")
                waited += time.monotonic() - before
        except redis.RedisError as exc:
            _free(slots, token)
            return item, _no_limits(exc), provider.name
        if lease is not None and not lease.holds(item.delivery_id):
            _free(slots, token)  # a wait for a line or the rate outlasted the claim
            return item, _lease_lost(), provider.name
        metrics.waited(item.channel, waited)
        start = time.monotonic()
        try:
            result = await provider.send(item.message)
        except ProviderError as error:
            metrics.provider_request(provider.name, item.channel, time.monotonic() - start, error)
            _free(slots, token)
            return item, _as_held_back(breakers, provider.name, item.channel, error), \
                provider.name
        metrics.provider_request(provider.name, item.channel, time.monotonic() - start)
        breakers.answered(provider.name, item.channel)
        return item, result, provider.name


def _as_held_back(breakers: Breakers, provider: str, channel: Channel,
                  error: ProviderError) -> ProviderError:
    """ERROR told to the breaker; as HeldBack where the provider refused service as a whole."""
    if error.unknown:
        return error  # no answer: says nothing about whether the provider is there
    if not error.retryable:
        breakers.answered(provider, channel)  # an answer about this message
        return error
    until = breakers.refused(provider, channel)
    return HeldBack(str(error), until) if error.unavailable else error


def _free(slots: CallSlots | None, token: str) -> None:
    """The line of a call that was not placed; if Redis is gone, its entry runs out."""
    if slots is not None:
        with suppress(redis.RedisError):
            slots.release(token)
