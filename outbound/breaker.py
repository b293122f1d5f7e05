"""A circuit breaker per provider and channel, one set per worker process (in its Runtime).

When the carrier as a whole refuses service (it answers 5xx or 429 to everything, or cannot
be reached), sending on only wastes requests and turns every message of an action into a
failed attempt. After TRIP_AFTER such refusals in a row, the breaker opens: for a while no
request goes out, and the messages whose turn comes are put back to be tried when it closes,
without counting an attempt (`outbound.sender`, `outbound.outcomes`). When that moment comes,
the next send is a probe: an answer closes the breaker, another refusal opens it again for
twice as long, up to OPEN_MOST. Any answer in between (a sent message, or an error about one
message) makes the refusals no longer "in a row".

Each worker process keeps its own: it needs no Redis (which may be what is down), and a few
workers each probing once in OPEN_MOST seconds is no load on a carrier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from core.metrics import Metrics

#: Refusals in a row (a retryable error with an answer: 5xx, 429, unreachable) that open it.
TRIP_AFTER = 3
#: Seconds the breaker first stays open; each failed probe doubles it, up to OPEN_MOST.
OPEN_FIRST = 1.0
OPEN_MOST = 10.0


@dataclass
class _State:
    refusals: int = 0
    #: Times it opened since it last closed.
    opened: int = 0
    #: While open: until when, by the monotonic clock, and the same moment as a Unix time.
    until: float = 0.0
    until_wall: float = 0.0


class Breakers:
    """The breakers of one process, by provider and channel."""

    def __init__(self, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.metrics = metrics or Metrics()
        self._clock, self._wall = clock, wall
        self._states: dict[tuple[str, str], _State] = {}

    def _state(self, provider: str, channel: str) -> _State:
        return self._states.setdefault((provider, channel), _State())

    def held_until(self, provider: str, channel: str) -> float | None:
        """While the breaker of PROVIDER and CHANNEL is open: the Unix time it closes."""
        state = self._states.get((provider, channel))
        if state is None or self._clock() >= state.until:
            return None
        return state.until_wall

    def refused(self, provider: str, channel: str) -> float | None:
        """The provider refused service once more; the Unix time the breaker closes again if
        it is (now) open."""
        state = self._state(provider, channel)
        now = self._clock()
        if now < state.until:  # a send that began before it opened: nothing new learnt
            return state.until_wall
        state.refusals += 1
        if state.refusals < TRIP_AFTER:
            return None
        period = min(OPEN_MOST, OPEN_FIRST * 2 ** state.opened)
        state.opened += 1
        state.until, state.until_wall = now + period, self._wall() + period
        self.metrics.breaker_opened(provider, channel, period)
        return state.until_wall

    def answered(self, provider: str, channel: str) -> None:
        """The provider answered about a message (taken, or refused for its own sake)."""
        state = self._states.get((provider, channel))
        if state is not None and (state.refusals or state.opened):
            self._states[(provider, channel)] = _State()
            self.metrics.breaker_closed(provider, channel)
