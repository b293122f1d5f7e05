"""Senders for the cross-process rate tests, in a module of their own: a spawned process
imports this, Redis and the throttle, not the whole test module (which took four processes
25 s to start on a loaded machine). READY is a barrier: they begin together."""

from __future__ import annotations

import os
import time

import redis

from outbound.throttle import SendWindow, Throttle


def reserve_many(url: str, rate: float, count: int, out, ready) -> None:
    throttle = Throttle(redis.Redis.from_url(url))
    ready.wait(120)
    out.put([throttle.reserve("shared", rate, 1).start for _ in range(count)])


def send_through_window(url: str, count: int, out, ready) -> None:
    """Send COUNT times as eagerly as the window of 20 a second admits."""
    window = SendWindow(redis.Redis.from_url(url))
    ready.wait(120)
    sent = []
    for n in range(count):
        while True:
            delay, admitted = window.admit("carrier", 20.0, f"{os.getpid()}:{n}")
            if admitted is not None:
                break
            time.sleep(delay)
        sent.append(admitted)
    out.put(sent)
