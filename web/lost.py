"""POST /lost: the LoST server (RFC 5222) for SIP proxies and ESRPs; the protocol lives in
routing.lost, this is only its HTTP binding (Section 14).

Open by default, as RFC 5222 (Section 18) expects of a mapping service. LOST_CREDENTIALS
restricts it to clients that send them with HTTP Basic authentication, which is what the
RFC names for the purpose; a refused client gets a plain 401, since HTTP-level failures carry
no LoST XML. Every LoST answer, errors included, is a 200 with application/lost+xml.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, request

from core.addresses import client_network
from routing import lost
from web import attempts
from web.context import csrf, db, runtime

log = logging.getLogger(__name__)
bp = Blueprint("lost", __name__)
csrf.exempt(bp)

#: Failed authentications per client address per minute before it gets 429.
FAILURES_PER_IP = 20
CHALLENGE = 'Basic realm="lost", charset="UTF-8"'


@bp.post("/lost")
def lost_request() -> Response:
    """One LoST request in, one LoST document out."""
    refused = _refusal()
    if refused is not None:
        return refused
    settings = runtime().settings
    source = lost.source_for(settings.public_url)
    body = request.stream.read(lost.MAX_BODY + 1)
    try:
        config = lost.LostConfig(source=source, national_fallback=runtime().national_fallback,
                                 service_number=lost.dial_string(settings.free_number))
        document = lost.answer(db(), body, request.content_type, datetime.now(UTC), config)
    except Exception:  # noqa: BLE001 - a LoST client always gets a LoST answer
        log.exception("LoST request failed")
        document = lost.internal_error(source)
    return Response(document, content_type=f"{lost.MEDIA_TYPE}; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})


def _refusal() -> Response | None:
    """401 (or 429 after too many failures) unless /lost is open or the credentials match."""
    expected = runtime().settings.lost_credentials
    if not expected:
        return None
    failures = f"lost-fail:ip:{client_network(request.remote_addr)}"
    if attempts.too_many(runtime().redis, {failures: FAILURES_PER_IP}):
        return Response("too many failed attempts; try again in a minute\n", status=429,
                        mimetype="text/plain",
                        headers={"Retry-After": str(attempts.WINDOW_SECONDS)})
    if hmac.compare_digest(_presented().encode(), expected.encode()):
        return None
    attempts.count_failure(runtime().redis, [failures])
    return Response("LoST needs HTTP Basic authentication\n", status=401, mimetype="text/plain",
                    headers={"WWW-Authenticate": CHALLENGE})


def _presented() -> str:
    """user:password from an Authorization: Basic header, or ""."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
