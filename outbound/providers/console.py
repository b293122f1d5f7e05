"""The demo provider: it sends nothing, and records what it would have sent."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from itertools import count
from pathlib import Path

from outbound.providers import Message

log = logging.getLogger("burgernet.console")


class ConsoleProvider:
    """Writes each message as a JSON line (and to the log) instead of sending it."""

    name = "console"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._ids = count(1)

    async def send(self, message: Message) -> str:
        provider_id = f"CONSOLE{next(self._ids):012d}"
        record = {"id": provider_id, "channel": message.channel.value, "to": message.to,
                  "language": message.language, "body": message.body,
                  "delivery": message.delivery_id}
        log.info("would send %s", json.dumps(record, ensure_ascii=False))
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return provider_id

    async def find_sent(self, message: Message, since: datetime) -> str | None:
        return None  # the demo provider keeps no state worth asking

    async def close(self) -> None:
        return None
