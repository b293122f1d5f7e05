"""Failed attempts counted per key in Redis over a fixed window, shared by every web worker:
logins per e-mail address and client, API tokens per client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis

WINDOW_SECONDS = 60


def too_many(client: redis.Redis | None, limits: Mapping[str, int]) -> bool:
    """True when any key of LIMITS has reached its number of failures in the current window.
    Without Redis nothing is counted, so nothing is refused."""
    if client is None or not limits:
        return False
    keys = list(limits)
    counts = client.mget(keys)
    return any(int(count or 0) >= limits[key] for key, count in zip(keys, counts, strict=True))


def count_failure(client: redis.Redis | None, keys: Iterable[str],
                  window: int = WINDOW_SECONDS) -> None:
    """One more failure for each of KEYS; a key's window starts at its first failure."""
    if client is None:
        return
    with client.pipeline() as pipe:
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
        pipe.execute()
