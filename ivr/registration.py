"""Whether each SIP node (`burgernet sip`) is registered at its registrar, where every host
can read it: one Redis key per node, refreshed while the node runs and expiring soon after it
stops, so `burgernet status` shows the live nodes and a dead one drops out."""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import dataclass
from datetime import datetime

import redis

log = logging.getLogger(__name__)

PREFIX = "sip:registration:"
#: Seconds between reports of a running node.
REPORT_EVERY = 10.0
#: A node's report outlives three missed refreshes, then it is gone.
TTL = 35


@dataclass(frozen=True)
class Registration:
    """What one node last said: its name (user@address:port), the registrar, its host."""

    node: str
    registered: bool
    proxy: str
    host: str
    at: datetime


class RegistrationReport:
    """A node's reports to CONNECTION; a Redis that cannot be reached costs a warning, never
    the node (calls go on without Redis)."""

    def __init__(self, connection: redis.Redis, node: str, proxy: str) -> None:
        self.connection = connection
        self.node = node
        self.proxy = proxy
        self._failing = False

    def report(self, registered: bool, now: datetime) -> None:
        """Say whether the node is REGISTERED, as of NOW."""
        value = {"registered": registered, "proxy": self.proxy, "host": socket.gethostname(),
                 "at": now.isoformat()}
        try:
            self.connection.set(PREFIX + self.node, json.dumps(value), ex=TTL)
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("cannot report the SIP registration to Redis: %s", exc)
            self._failing = True
            return
        self._failing = False

    def withdraw(self) -> None:
        """The node stops: its report goes at once."""
        try:
            self.connection.delete(PREFIX + self.node)
        except redis.RedisError:
            pass  # it expires in TTL seconds anyway


def registrations(connection: redis.Redis) -> list[Registration]:
    """Every live node's last report, by node name."""
    keys = sorted(connection.scan_iter(match=PREFIX + "*", count=100))
    found = []
    for key, raw in zip(keys, connection.mget(keys) if keys else [], strict=True):
        if raw is None:  # expired between the scan and the read
            continue
        value = json.loads(raw)
        found.append(Registration(node=key.decode()[len(PREFIX):],
                                  registered=bool(value["registered"]), proxy=value["proxy"],
                                  host=value.get("host", ""),
                                  at=datetime.fromisoformat(value["at"])))
    return found
