"""The `burgernet` commands' logging in JSON (LOG_FORMAT=json), into a buffer a test reads."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.cli import QUIET_LOGGERS, configure_logging


class JsonLog:
    """What was logged: the raw text, and its lines parsed (each must be one JSON object)."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self, logger: str | None = None) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.text.splitlines()]
        assert all(isinstance(entry, dict) for entry in parsed)
        return [entry for entry in parsed if logger is None or entry["logger"] == logger]


@contextmanager
def json_log(level: str = "INFO") -> Iterator[JsonLog]:
    """Logging set up as `burgernet` does with LOG_FORMAT=json; put back as it was after."""
    root = logging.getLogger()
    before = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    stream = io.StringIO()
    configure_logging(level, stream, log_format="json")
    try:
        yield JsonLog(stream)
    finally:
        root.handlers[:], root.level = before[0], before[1]
        for name, level_before in quiet.items():
            logging.getLogger(name).setLevel(level_before)
