"""Rate limits that hold across any number of workers and hosts: GCRA slots kept in Redis.

A sender with a rate of R messages a second hands out one slot every 1/R seconds. A worker
reserves a block of N slots in one atomic step (a Lua script) and learns when its first slot
starts; it then sends message i at start + i/R. Reservations never overlap, so the sum of all
workers stays at the configured rate whatever their number.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import redis

from core.settings import Settings

# KEYS[1]: the sender's theoretical arrival time (TAT, microseconds since the epoch)
# ARGV: now_us, interval_us, count, burst_us
# Returns the start of the reserved block in microseconds.
_RESERVE = """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local start = math.max(tat, now - burst)
local finish = start + interval * count
redis.call('SET', KEYS[1], finish, 'PX', math.ceil((finish - now) / 1000) + 60000)
return start
"""


@dataclass(frozen=True)
class Reservation:
    """A block of COUNT slots, the first at START (epoch seconds), one every INTERVAL."""

    start: float
    interval: float
    count: int

    def slot(self, index: int) -> float:
        return self.start + index * self.interval


class Throttle:
    """Shared per-sender rate limits; the Redis connection is passed in."""

    def __init__(self, connection: redis.Redis, prefix: str = "throttle") -> None:
        self.connection = connection
        self.prefix = prefix
        self._reserve = connection.register_script(_RESERVE)

    def reserve(self, sender: str, rate: float, count: int = 1,
                now: float | None = None) -> Reservation:
        """Reserve COUNT slots of SENDER at RATE per second (rate <= 0: no limit)."""
        if rate <= 0:
            moment = time.time() if now is None else now
            return Reservation(moment, 0.0, count)
        interval_us = 1_000_000 / rate
        now_us = int((time.time() if now is None else now) * 1_000_000)
        start_us = int(self._reserve(keys=[f"{self.prefix}:{sender}"],
                                     args=[now_us, interval_us, count, 0]))
        return Reservation(start_us / 1_000_000, interval_us / 1_000_000, count)

    def booked_until(self, sender: str) -> float | None:
        """The end of SENDER's last reserved slot (epoch seconds), or None: nothing reserved
        within the last minute."""
        value = self.connection.get(f"{self.prefix}:{sender}")
        return None if value is None else int(float(value)) / 1_000_000


# KEYS[1]: the sender's recent sends (sorted set, score = send time in microseconds by Redis's
# clock, the same for every host); ARGV: limit, member. Returns minus the admission time when
# the send may go now, else the microseconds to wait until the oldest send leaves the window.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + 1000000 - now + 1)
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 2000)
return -now
"""


class SendWindow:
    """The hard cap behind the GCRA schedule: at most RATE sends in any sliding second.

    GCRA spaces the reserved slots exactly, but a send that wakes up late lands in the same
    second as the ones after it. Checked at the moment of sending, this window holds the next
    send back instead, so no second at the carrier ever sees more than the configured rate.
    """

    def __init__(self, connection: redis.Redis, prefix: str = "window") -> None:
        self.connection = connection
        self.prefix = prefix
        self._admit = connection.register_script(_ADMIT)

    def recent(self, sender: str) -> int:
        """SENDER's sends admitted within the last second, by Redis's clock."""
        seconds, micros = self.connection.time()
        now_us = int(seconds) * 1_000_000 + int(micros)
        return int(self.connection.zcount(f"{self.prefix}:{sender}", now_us - 1_000_000, "+inf"))

    def admit(self, sender: str, rate: float, member: str) -> tuple[float, float | None]:
        """(0, when) if MEMBER may be sent now and is counted, by Redis's clock; else
        (seconds to wait before asking again, None)."""
        if rate <= 0:
            return 0.0, None
        limit = max(1, math.ceil(rate))
        answer = int(self._admit(keys=[f"{self.prefix}:{sender}"], args=[limit, member]))
        if answer <= 0:
            return 0.0, -answer / 1_000_000
        return answer / 1_000_000, None

    async def wait(self, sender: str, rate: float, member: str) -> None:
        """Return once MEMBER is admitted (at once when there is no limit)."""
        while (delay := self.admit(sender, rate, member)[0]) > 0:
            await asyncio.sleep(delay)


# KEYS[1]: the trunk's holders (sorted set, score = expiry in ms); ARGV: now_ms, ttl_ms, limit,
# token. Expired holders (a call whose end we never heard of) are dropped first.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class CallSlots:
    """A cap on concurrent calls per trunk, shared by every worker: a call holds a slot from
    its creation until its final status arrives (or TTL passes, if that never comes)."""

    def __init__(self, connection: redis.Redis, trunk: str, limit: int,
                 ttl: float = 600.0) -> None:
        self.connection = connection
        self.key = f"calls:{trunk}"
        self.limit = limit
        self.ttl_ms = int(ttl * 1000)
        self._acquire = connection.register_script(_ACQUIRE)

    def acquire(self, token: str, now: float | None = None) -> bool:
        """Take a slot for TOKEN if one is free (always, when there is no cap)."""
        if self.limit <= 0:
            return True
        now_ms = int((time.time() if now is None else now) * 1000)
        return bool(self._acquire(keys=[self.key],
                                  args=[now_ms, self.ttl_ms, self.limit, token]))

    def release(self, token: str) -> None:
        self.connection.zrem(self.key, token)

    def busy(self) -> int:
        return int(self.connection.zcount(self.key, int(time.time() * 1000), "+inf"))


def voice_trunk(settings: Settings) -> str:
    """The voice sender's name, for its rate and its concurrent-call cap."""
    return f"{settings.voice_provider}:voice:{settings.twilio_from or 'console'}"


def call_slots(connection: redis.Redis, settings: Settings) -> CallSlots:
    """The shared cap on calls in progress on the voice trunk (a call's end releases)."""
    return CallSlots(connection, voice_trunk(settings), settings.voice_max_concurrent)


def call_token(delivery_id: int) -> str:
    """What a call holds its slot under: its delivery, known before the provider's call id."""
    return f"delivery:{delivery_id}"
