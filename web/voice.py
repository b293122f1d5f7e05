"""Twilio voice and SMS webhooks: the free number, the voice message, inbound SMS.

URLs to configure on the free number (README): "A call comes in" → POST
`{PUBLIC_URL}/webhooks/twilio/voice/inbound`; "A message comes in" → POST
`{PUBLIC_URL}/webhooks/twilio/sms`; call status → POST `{PUBLIC_URL}/webhooks/twilio/status`.

Every request is signature-checked first. After that a caller always gets TwiML that moves the
call on: if anything fails inside, the call is put through to the national fallback.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, request, send_file
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from core.egress import Egress
from core.reference import load_meldkamer_config
from core.settings import Settings
from ivr.flows import Flows, Incoming
from ivr.inbound_sms import MAX_MEDIA_BYTES, Media, handle_sms, seen
from ivr.steps import CallState, DialResult, Digits, FlowError, Say
from ivr.twiml import TwimlUrls, render, render_says
from outbound import safe_fetch
from outbound.callbacks import answered_by, apply_or_keep
from outbound.queues import schedule
from web.context import csrf, db, runtime
from web.webhooks import first_time, signed_only

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/webhooks/twilio")
sounds_bp = Blueprint("sounds", __name__)

TWIML = "text/xml"


def _twiml(body: str) -> Response:
    return Response(body, mimetype=TWIML)


def _flows() -> Flows:
    rt = runtime()
    return Flows(db(write=True), rt.catalogue, national_fallback=rt.national_fallback,
                 message_text=rt.message_text, dial_timeout=rt.settings.dial_timeout,
                 metrics=rt.metrics)


def _urls() -> TwimlUrls:
    return TwimlUrls(runtime().settings.public_url, step="/webhooks/twilio/voice/step",
                     whisper="/webhooks/twilio/voice/whisper")


def _audio_url(say: Say) -> str | None:
    """The rendered prompt's public URL, or None so that TwiML falls back to <Say>."""
    renderer = runtime().prompt_renderer
    if renderer is None:
        return None
    try:
        key = renderer.render(say.text, say.language).key
    except Exception:  # noqa: BLE001 - a missing TTS engine must not cost the caller the call
        log.exception("prompt not rendered; Twilio reads it with <Say>")
        return None
    return f"{runtime().settings.public_url}/sounds/{key}.wav"


def _rescue(error: Exception) -> Response:
    """Put the caller through to the national fallback whatever went wrong."""
    log.exception("voice webhook failed; caller goes to the national fallback", exc_info=error)
    _forget_writes()
    settings = runtime().settings
    try:
        code = runtime().national_fallback
        phone = load_meldkamer_config(settings.meldkamer_config)[code].phone  # not the database
    except Exception:  # noqa: BLE001 - even a broken configuration gets the caller an answer
        log.exception("no national fallback to put the caller through to")
        phone = None
    response = VoiceResponse()
    if phone:
        response.say("U wordt doorverbonden.", language="nl-NL")
        response.dial(phone)
    else:
        response.say("Er is een storing. Bel bij spoed 112.", language="nl-NL")
        response.hangup()
    return _twiml(str(response))


@bp.post("/voice/inbound")
@csrf.exempt
@signed_only
def inbound() -> Response:
    """A call on the free number."""
    try:
        turn = _flows().start_free(Incoming(
            transport="twilio", call_id=request.form.get("CallSid"),
            caller=request.form.get("From"), called=request.form.get("To")))
        return _twiml(render(turn, _urls(), _audio_url))
    except Exception as exc:  # noqa: BLE001
        return _rescue(exc)


@bp.post("/voice")
@csrf.exempt
@signed_only
def message() -> Response:
    """An outbound voice message was answered: read it and offer 1 and 2.

    With answering machine detection (`outbound.providers.twilio_rest`) Twilio says who
    answered (AnsweredBy): a person (or unknown) gets the menu; an answering machine, once its
    greeting is over, gets the message once and a hang-up, and the delivery counts as left on
    voicemail; a fax is hung up on, and the participant gets an SMS instead."""
    delivery = request.args.get("delivery", "")
    if not delivery.isdigit():
        return Response("delivery is required\n", status=400, mimetype="text/plain")
    call_id = request.form.get("CallSid")
    kind = answered_by(request.form.get("AnsweredBy"))
    try:
        if kind == "person":
            turn = _flows().start_message(int(delivery), transport="twilio", call_id=call_id)
        else:
            turn = _flows().start_machine(int(delivery), transport="twilio", call_id=call_id,
                                          fax=kind == "fax")
            _machine_answered(call_id, request.form.get("AnsweredBy"))
        return _twiml(render(turn, _urls(), _audio_url))
    except FlowError as exc:
        return Response(f"{exc}\n", status=404, mimetype="text/plain")
    except Exception:  # noqa: BLE001 - the participant still hears where to call
        log.exception("voice message %s failed; a short notice is read instead", delivery)
        _forget_writes()
        response = VoiceResponse()
        response.say(f"Dit is een bericht van Burgernet. Kijk in uw sms of bel gratis "
                     f"{runtime().settings.free_number}.", language="nl-NL")
        response.hangup()
        return _twiml(str(response))


def _machine_answered(call_id: str | None, verdict: str | None) -> None:
    """The delivery of this call: left on voicemail, or failed on a fax (its SMS queued).
    Kept for later when the batch has not recorded the CallSid yet, as a status is."""
    if not call_id:
        return
    redis = runtime().redis
    again = apply_or_keep(db(), redis, call_id, "in-progress", datetime.now(UTC),
                          answered=verdict, metrics=runtime().metrics)
    if again:
        db().commit()
        if redis is not None:
            schedule(redis, db(), again)


@bp.post("/voice/step")
@csrf.exempt
@signed_only
def step() -> Response:
    """The result of a Gather (Digits) or a Dial (DialCallStatus)."""
    try:
        state = CallState.decode(request.args)
    except FlowError as exc:
        return Response(f"{exc}\n", status=400, mimetype="text/plain")
    try:
        if state.stage == "dial":
            event: Digits | DialResult = DialResult(
                request.form.get("DialCallStatus", "failed"))
        else:
            event = Digits(_digits(request.form.get("Digits", "")))
        turn = _flows().advance(state, event)
        return _twiml(render(turn, _urls(), _audio_url))
    except Exception as exc:  # noqa: BLE001
        return _rescue(exc)


@bp.post("/voice/whisper")
@csrf.exempt
@signed_only
def whisper() -> Response:
    """Played to the centralist who answers, before the caller is connected."""
    try:
        state = CallState.decode(request.args)
        return _twiml(render_says(_flows().whisper(state), _audio_url))
    except Exception as exc:  # noqa: BLE001
        log.exception("whisper failed; the call is connected without it", exc_info=exc)
        _forget_writes()
        return _twiml("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>")


def _forget_writes() -> None:
    """Roll the request's session back after a failure: a failed write leaves it needing
    that, and the commit at the end of the request would raise (a 500 instead of TwiML)."""
    try:
        db().rollback()
    except Exception:  # noqa: BLE001 - the caller's answer matters more than this session
        log.exception("the voice webhook's session could not be rolled back")


def _digits(value: str) -> str:
    """Only keys a phone has, at most 32 of them; anything else counts as no input."""
    value = value.strip()[:32]
    return value if all(c in "0123456789*#" for c in value) else ""


@sounds_bp.get("/sounds/<key>.wav")
def sound(key: str) -> Response:
    """A rendered prompt (8 kHz u-law WAV), named by its content hash."""
    renderer = runtime().prompt_renderer
    if renderer is None:
        abort(404)
    try:
        path = renderer.path_for(key, "ulaw")
    except ValueError:
        abort(404)
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="audio/wav", max_age=86400)


@bp.post("/sms")
@csrf.exempt
@signed_only
def sms() -> Response:
    """An inbound SMS or MMS: STOP / START / HELP, or a tip (with photos) on an action.

    A message taken before (the same MessageSid) is answered with an empty response: no
    second tip, no second reply SMS (`ivr.inbound_sms`)."""
    message_sid = request.form.get("MessageSid", "")[:64] or None
    with first_time("sms", message_sid) if message_sid else nullcontext(True) as fresh:
        if not fresh or (message_sid and seen(db(write=True), message_sid)):
            log.info("inbound sms %s repeated; nothing done", message_sid)
            return _twiml(str(MessagingResponse()))
        sender = request.form.get("From", "")
        body = request.form.get("Body", "")[:5000]
        media, failed = _fetch_media(request.form)
        settings = runtime().settings
        result = handle_sms(db(write=True), sender, body, now=datetime.now(UTC),
                            free_number=settings.free_number, media=media,
                            media_dir=settings.var_dir / "media" / "tips",
                            message_sid=message_sid)
        db().commit()
    log.info("inbound sms: %s (%d tip(s), %d attachment(s) refused)", result.outcome,
             len(result.tip_ids), result.rejected_media + failed)
    response = MessagingResponse()
    if result.reply:
        response.message(result.reply)
    return _twiml(str(response))


MAX_MEDIA = 5
#: One deadline for all of a message's photos, fetched together (connect, redirects and
#: body): Twilio waits 15 seconds for the webhook's answer.
MEDIA_DEADLINE = 10.0
MEDIA_REDIRECTS = 3
#: Our Twilio credentials go to Twilio's API only, never along a redirect to its CDN.
TWILIO_API = ("*.twilio.com",)


def _fetch_media(form: Any) -> tuple[list[Media], int]:
    """Download the MMS attachments from the provider's own hosts (`outbound.safe_fetch`)."""
    try:
        count = min(int(form.get("NumMedia", "0") or 0), MAX_MEDIA)
    except ValueError:
        return [], 0
    urls = [form.get(f"MediaUrl{index}", "") for index in range(count)]
    media: list[Media] = []
    failed = 0
    for index, result in enumerate(asyncio.run(_download(urls, runtime().settings))):
        if isinstance(result, safe_fetch.FetchRefused):
            log.warning("MMS attachment %d not fetched: %s", index, result)
            failed += 1
            continue
        kind = result.content_type or form.get(f"MediaContentType{index}", "")
        media.append(Media(result.content, kind))
    return media, failed


async def _download(urls: list[str], settings: Settings
                    ) -> list[safe_fetch.Fetched | safe_fetch.FetchRefused]:
    api = urlsplit(settings.twilio_base_url).hostname or "api.twilio.com"
    egress = Egress(settings.mms_media_hosts + (api,), settings.test_only_allow_loopback)
    auth = safe_fetch.basic_auth(settings.twilio_account_sid, settings.twilio_auth_token)
    async with safe_fetch.session(egress, limit=MAX_MEDIA) as client:
        async def one(url: str) -> safe_fetch.Fetched:
            return await safe_fetch.fetch(client, url, egress, max_bytes=MAX_MEDIA_BYTES,
                                          deadline=MEDIA_DEADLINE, max_redirects=MEDIA_REDIRECTS,
                                          authorization=auth, auth_hosts=(api, *TWILIO_API))

        results = await asyncio.gather(*(one(url) for url in urls), return_exceptions=True)
    fetched: list[safe_fetch.Fetched | safe_fetch.FetchRefused] = []
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, safe_fetch.FetchRefused):
            raise result
        fetched.append(result)
    return fetched
