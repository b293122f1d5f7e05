"""Failed attempts counted per key in Redis over a fixed window, shared by every web worker:
logins (web.login_limits), API tokens and LoST credentials per client."""

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


def counts(client: redis.Redis | None, keys: Iterable[str]) -> dict[str, int]:
    """The failures counted now under each of KEYS (all 0 without Redis)."""
    keys = list(keys)
    values = client.mget(keys) if client is not None and keys else [None] * len(keys)
    return {key: int(value or 0) for key, value in zip(keys, values, strict=True)}


def count_failure(client: redis.Redis | None, keys: Iterable[str],
                  window: int = WINDOW_SECONDS) -> None:
    """One more failure for each of KEYS; a key's window starts at its first failure."""
    count_failures(client, dict.fromkeys(keys, window))


def count_failures(client: redis.Redis | None, windows: Mapping[str, int]) -> None:
    """One more failure for each key of WINDOWS, counted over its own window in seconds."""
    if client is None or not windows:
        return
    with client.pipeline() as pipe:
        for key, window in windows.items():
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
        pipe.execute()


def forget(client: redis.Redis | None, keys: Iterable[str]) -> None:
    """Drop the failures counted under KEYS."""
    keys = list(keys)
    if client is not None and keys:
        client.delete(*keys)
