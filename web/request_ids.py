"""The ids a web request's log lines carry (`core.logs`): its request id, and the action,
delivery or call the request is about.

The request id is the caller's X-Request-ID when it is well formed (a proxy's or a load
balancer's, so one id follows the request through every log), else a new one; it is sent back
in the same header, and the jobs the request queues carry it on (`outbound.queues`), so a
worker's lines for them name it too.
"""

from __future__ import annotations

import re
import uuid
from contextlib import suppress

from flask import Flask, Response, g, request

from core.logs import bind_ids, unbind_ids
from core.privacy import redact

HEADER = "X-Request-ID"
#: 8 to 128 letters, digits, dots, dashes and underscores, beginning with a letter or digit.
WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,127}")
#: Provider webhooks: the call they are about is in the form (Twilio's CallSid).
CALL_BLUEPRINTS = frozenset({"voice", "webhooks"})


def init_app(app: Flask) -> None:
    """Give every request of APP its ids, before any other handler of the app logs."""
    app.before_request(_bind)
    app.after_request(_answer)
    app.teardown_request(_unbind)


def request_id(value: str | None) -> str:
    """VALUE when it is a well-formed request id that the log's redaction leaves as it is (no
    number or address: the id is written in clear, in the header and every line); else a new
    one."""
    if value and WELL_FORMED.fullmatch(value) and redact(value) == value:
        return value
    while True:
        new = uuid.uuid4().hex
        if redact(new) == new:  # ten digits from a leading 0 read as a phone number
            return new


def _bind() -> None:
    g.request_id = request_id(request.headers.get(HEADER))
    g.log_ids = bind_ids(request_id=g.request_id,
                         action_id=_number((request.view_args or {}).get("action_id")),
                         delivery_id=_number(request.args.get("delivery")),
                         call_id=_call_id())


def _answer(response: Response) -> Response:
    if "request_id" in g:
        response.headers[HEADER] = g.request_id
    return response


def _unbind(_error: BaseException | None) -> None:
    token = g.pop("log_ids", None)
    if token is not None:
        with suppress(ValueError):  # torn down in another context (a streamed answer's end)
            unbind_ids(token)


def _call_id() -> str | None:
    """Read before the webhook's signature is checked: bounded, as the webhook logs it."""
    if request.blueprint not in CALL_BLUEPRINTS:
        return None
    value = request.form.get("CallSid")
    return value[:64] if value else None


def _number(value: object) -> int | None:
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 19 else None
