"""The demo provider: it sends nothing, and records what it would have sent.

The record file (`var/console-outbox.jsonl`) is the demo's phone and mailbox: it holds
numbers, codes and links in full, readable by its owner only, and a participant who deletes
their data or never verified their number is taken out of it (`forget_recipients`). The log
line of each message masks all of that.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import IO

from core.models import Channel
from core.participants import Erased
from core.privacy import mask_email, mask_phone, redact
from outbound.providers import Message

log = logging.getLogger("burgernet.console")
#: The record file's name under var/.
OUTBOX = "console-outbox.jsonl"


class ConsoleProvider:
    """Writes each message as a JSON line (and a masked line to the log) instead of sending
    it."""

    name = "console"
    keep_open = False

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._ids = count(1)

    async def send(self, message: Message) -> str:
        provider_id = f"CONSOLE{next(self._ids):012d}"
        record = {"id": provider_id, "channel": message.channel.value, "to": message.to,
                  "language": message.language, "body": message.body,
                  "delivery": message.delivery_id}
        log.info("would send %s %s to %s (delivery %s): %s", provider_id,
                 message.channel.value, _masked_recipient(message), message.delivery_id,
                 redact(message.body))
        if self.path is not None:
            with _locked(self.path) as handle:
                handle.seek(0, os.SEEK_END)
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return provider_id

    async def find_sent(self, message: Message, since: datetime) -> str | None:
        return None  # the demo provider keeps no state worth asking

    async def close(self) -> None:
        return None


def _masked_recipient(message: Message) -> str:
    if message.channel in (Channel.SMS, Channel.VOICE):
        return mask_phone(message.to)
    if message.channel == Channel.EMAIL:
        return mask_email(message.to)
    return f"participant {message.to}"


def forget_sent(var_dir: Path, erased: Iterable[Erased]) -> int:
    """Take the messages to participants just erased out of the record file under VAR_DIR."""
    recipients = [value for one in erased for value in (one.phone, one.email) if value]
    return forget_recipients(var_dir / OUTBOX, recipients)


def forget_recipients(path: Path, recipients: Collection[str]) -> int:
    """Take every record addressed to one of RECIPIENTS (numbers, e-mail addresses) out of
    the file at PATH; returns how many went. Appends wait while the file is rewritten."""
    wanted = {r.casefold() for r in recipients if r}
    if not wanted or not path.exists():
        return 0
    with _locked(path) as handle:
        handle.seek(0)
        lines = handle.read().splitlines(keepends=True)
        kept = [line for line in lines if _recipient(line) not in wanted]
        if len(kept) != len(lines):
            handle.seek(0)
            handle.truncate()
            handle.writelines(kept)
    return len(lines) - len(kept)


def _recipient(line: str) -> str | None:
    try:
        return str(json.loads(line)["to"]).casefold()
    except (ValueError, KeyError, TypeError):
        return None


@contextmanager
def _locked(path: Path) -> Iterator[IO[str]]:
    """The record file, created for its owner only, under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(descriptor, 0o600)
    with open(descriptor, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
