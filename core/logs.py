"""What a log line says besides its message: the ids of the work it is about, and the JSON
form of a line (LOG_FORMAT=json) for log collectors.

The ids live in a context variable, set where the work starts (a web request, an RQ job, a
call, one message of a batch) with `log_context`, and read by `ContextFilter` when a line is
written: no function has to pass them on to the next. Threads start with an empty context;
asyncio tasks copy the context of the code that made them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from core.privacy import RedactingFormatter, redact

#: The ids a line may carry, in the order a JSON line lists them.
FIELDS = ("request_id", "job_id", "action_id", "delivery_id", "call_id")
LOG_FORMATS = ("text", "json")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_ids: ContextVar[Mapping[str, Any]] = ContextVar("burgernet_log_ids", default=_EMPTY)


def current_ids() -> Mapping[str, Any]:
    """The ids bound in this context (read-only)."""
    return _ids.get()


def bind_ids(*, request_id: str | None = None, job_id: str | None = None,
             action_id: int | None = None, delivery_id: int | None = None,
             call_id: str | None = None) -> Token[Mapping[str, Any]]:
    """Add the given ids to this context until `unbind_ids(token)` (None leaves one as it
    was). For code that starts and ends work in two callbacks (a web request)."""
    given = {"request_id": request_id, "job_id": job_id, "action_id": action_id,
             "delivery_id": delivery_id, "call_id": call_id}
    merged = {**_ids.get(), **{name: value for name, value in given.items()
                               if value is not None}}
    return _ids.set(MappingProxyType(merged))


def unbind_ids(token: Token[Mapping[str, Any]]) -> None:
    """The context as it was before `bind_ids` returned TOKEN."""
    _ids.reset(token)


@contextmanager
def log_context(*, request_id: str | None = None, job_id: str | None = None,
                action_id: int | None = None, delivery_id: int | None = None,
                call_id: str | None = None) -> Iterator[None]:
    """Every line logged inside the block (in this thread or task) carries these ids."""
    token = bind_ids(request_id=request_id, job_id=job_id, action_id=action_id,
                     delivery_id=delivery_id, call_id=call_id)
    try:
        yield
    finally:
        unbind_ids(token)


class ContextFilter(logging.Filter):
    """Copies the context's ids onto each record its handler takes (an id given with
    `extra=` wins), at the moment and in the thread the line is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _ids.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class JsonFormatter(RedactingFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the ids the
    record carries, and the traceback if any.

    Each text is redacted on its own (`core.privacy.redact`) before the line is encoded, so
    a mask never breaks the JSON, and `install_redaction` leaves this formatter as it is."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value if isinstance(value, int) else redact(str(value))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


def prepare_handler(handler: logging.Handler, log_format: str) -> None:
    """Make HANDLER write LOG_FORMAT lines that carry the context's ids (once)."""
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())
