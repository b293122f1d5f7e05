"""Provider webhooks: signature first, then one small domain call. Never a 500 to a provider."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from typing import Any

import redis
from flask import Blueprint, Response, request
from twilio.request_validator import RequestValidator

from outbound.callbacks import CALL_ENDED, UnknownStatus, apply_or_keep, end_call
from outbound.queues import schedule
from web.context import csrf, db, runtime

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

#: How long a webhook is remembered as taken. Past it (or when Redis was emptied) the database
#: still refuses what would change it twice; what Redis alone guards (a second reply SMS, the
#: line of a call freed twice) matters only while the call or the conversation is going on.
REPLAY_TTL = 48 * 3600


def signed() -> bool:
    """Twilio signs the public URL it called plus the form fields with our auth token.

    The whole form goes to the validator: a name may come more than once, and Twilio signs
    every value of it (a plain dict would keep only the first, and refuse a genuine request).
    """
    token = runtime().settings.twilio_auth_token
    if not token:
        return False
    url = runtime().settings.public_url + request.full_path.rstrip("?")
    signature = request.headers.get("X-Twilio-Signature", "")
    return RequestValidator(token).validate(url, request.form, signature)


@contextmanager
def first_time(kind: str, *identity: str) -> Iterator[bool]:
    """Whether the webhook of KIND with this IDENTITY (the provider's id and what it says) is
    taken for the first time: a replay, Twilio's own or a captured request sent again, finds
    the mark left by the first. The mark goes again when the block raises, so the provider's
    retry of a request that failed here is taken. Without Redis every request is new."""
    connection = runtime().redis
    key = f"webhook-seen:{kind}:" + hashlib.sha256("\x1f".join(identity).encode()).hexdigest()
    fresh = True
    if connection is not None:
        try:
            fresh = bool(connection.set(key, "1", nx=True, ex=REPLAY_TTL))
        except redis.RedisError:
            log.warning("replay marks unavailable; the database guards alone", exc_info=True)
            connection = None
    try:
        yield fresh
    except BaseException:
        if connection is not None and fresh:
            connection.delete(key)
        raise


def signed_only(view: Callable[..., Response]) -> Callable[..., Response]:
    """A provider webhook: 403 and nothing else happens unless Twilio's signature holds."""
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        if not signed():
            return Response("forbidden\n", status=403, mimetype="text/plain")
        return view(*args, **kwargs)
    return wrapper


@bp.post("/twilio/status")
@csrf.exempt
@signed_only
def twilio_status() -> Response:
    """MessageStatus / CallStatus callbacks: 204 when taken, 403 forged, 400 malformed.

    A status Twilio may add later is logged and answered 204 without moving anything: a 4xx
    would only make the provider send it again and again."""
    provider_id = request.form.get("MessageSid") or request.form.get("CallSid")
    value = request.form.get("MessageStatus") or request.form.get("CallStatus")
    if not provider_id or not value:
        return Response("MessageSid/CallSid and a status are required\n", status=400,
                        mimetype="text/plain")
    with first_time("status", provider_id, value) as fresh:
        if not fresh:
            log.info("status %r of %s repeated; nothing done", value[:40], provider_id[:64])
            return Response(status=204)
        try:
            again = _apply(provider_id, value)
        except UnknownStatus:
            log.warning("unknown status %r for %s ignored", value[:40], provider_id[:64])
            return Response(status=204)
        db().commit()  # before the mark stands, and the worker must find the rows of a retry
        redis = runtime().redis
        if again and redis is not None:
            schedule(redis, db(), again)
        # without Redis here, the worker's sweep queues them
    return Response(status=204)


def _apply(provider_id: str, value: str) -> list[int]:
    """The status on its delivery; a call's final one ends the call (`end_call`). The
    callback URL names the delivery, so a call that ends before its batch has recorded the
    CallSid frees its line at once."""
    rt, form = runtime(), request.form
    if form.get("CallSid") and value in CALL_ENDED:
        return end_call(db(write=True), rt.redis, rt.settings, provider_id, value,
                        datetime.now(UTC), delivery_id=request.args.get("delivery", type=int),
                        error=form.get("ErrorCode"), answered=form.get("AnsweredBy"),
                        metrics=rt.metrics)
    return apply_or_keep(db(write=True), rt.redis, provider_id, value, datetime.now(UTC),
                         error=form.get("ErrorCode"), answered=form.get("AnsweredBy"),
                         metrics=rt.metrics)
