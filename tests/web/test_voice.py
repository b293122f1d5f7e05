"""The free number and inbound SMS over Twilio webhooks: signed requests, TwiML parsed back."""

from __future__ import annotations

import io
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    CallRecord,
    Channel,
    Delivery,
    DeliveryStatus,
    Meldkamer,
    Organisation,
    OrganisationKind,
    Participant,
    ParticipantStatus,
    Tip,
    Urgency,
)
from fakes.media import MediaServer
from fakes.twilio import AUTH_TOKEN
from ivr.prompts import load_catalogue
from ivr.tts import key_for, sounds_dir

PUBLIC = "https://bn.example"
CALL = {"CallSid": "CA" + "1" * 32, "From": "anonymous", "To": "+31800001100"}


@pytest.fixture
def signed(twilio_signed: dict[str, str]) -> dict[str, str]:
    return {**twilio_signed, "public_url": PUBLIC}


@pytest.fixture
def client(make_app: Callable[..., Flask], signed: dict[str, str]) -> FlaskClient:
    return make_app(**signed).test_client()


def post(client: FlaskClient, url: str, params: dict[str, str], token: str = AUTH_TOKEN):
    """POST as Twilio does: form fields, signed over the public URL (path and query)."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def twiml(response) -> ET.Element:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    return ET.fromstring(response.get_data())


def test_a_call_is_greeted_asked_for_a_postcode_and_put_through_with_a_whisper(
        client, db, settings):
    root = twiml(post(client, "/webhooks/twilio/voice/inbound", CALL))
    gather = root.find("Gather")
    assert gather is not None and (gather.get("numDigits"), gather.get("finishOnKey")) == ("5", "#")
    play = gather.find("Play")
    assert play is not None and play.text.startswith(PUBLIC + "/sounds/")
    sound = client.get(urlsplit(play.text).path)
    assert sound.status_code == 200 and sound.data[:4] == b"RIFF"
    assert root.find("Redirect") is not None

    root = twiml(post(client, root.find("Redirect").text, {**CALL}))  # no key pressed
    gather = root.find("Gather")
    assert gather.get("numDigits") == "4" and gather.get("finishOnKey") == "#"

    root = twiml(post(client, gather.get("action"), {**CALL, "Digits": "3441"}))
    dial = root.find("Dial")
    number = dial.find("Number")
    mn = db.scalar(select(Meldkamer).where(Meldkamer.code == "MN"))
    assert number.text == mn.phone

    whisper = twiml(post(client, number.get("url"), {"CallSid": "CA" + "2" * 32}))
    assert whisper.find("Say") is not None  # it names the caller: never a file (see below)

    root = twiml(post(client, dial.get("action"), {**CALL, "DialCallStatus": "completed"}))
    assert root.find("Hangup") is not None
    record = db.scalar(select(CallRecord).where(CallRecord.provider_call_id == CALL["CallSid"]))
    assert record.outcome == "connected" and record.connected_at is not None
    assert record.routing_reason.startswith("postcode") and record.meldkamer_id == mn.id

    status = post(client, "/webhooks/twilio/status", {"CallSid": CALL["CallSid"],
                                                      "CallStatus": "completed"})
    assert status.status_code == 204
    db.refresh(record)
    assert record.ended_at is not None


def test_the_whisper_naming_the_caller_leaves_no_sound_file_anyone_could_fetch(
        client, settings):
    """A rendered prompt is public at /sounds/<hash of its text>: had the whisper been one,
    anyone could test whether a number called about an action by asking for that hash."""
    caller = {**CALL, "CallSid": "CA" + "5" * 32, "From": "+31612345678"}
    root = twiml(post(client, "/webhooks/twilio/voice/inbound", caller))
    gather = root.find("Gather")
    dial = twiml(post(client, gather.get("action"), {**caller, "Digits": "3441#"})).find("Dial")
    sounds = sounds_dir(settings)
    before = set(sounds.iterdir())
    whisper = twiml(post(client, dial.find("Number").get("url"), {"CallSid": "CA" + "6" * 32}))
    [said] = whisper.findall("Say")
    assert "Beller 3 1 6 1 2 3 4 5 6 7 8." in said.text and whisper.find("Play") is None
    assert set(sounds.iterdir()) == before
    assert client.get(f"/sounds/{key_for(said.text, 'nl')}.wav").status_code == 404


def test_a_busy_meldkamer_hands_the_caller_to_its_fallback(client, db):
    root = twiml(post(client, "/webhooks/twilio/voice/inbound", CALL))
    root = twiml(post(client, root.find("Redirect").text, CALL))
    root = twiml(post(client, root.find("Gather").get("action"), {**CALL, "Digits": "3011"}))
    root = twiml(post(client, root.find("Dial").get("action"),
                      {**CALL, "DialCallStatus": "busy"}))
    dh = db.scalar(select(Meldkamer).where(Meldkamer.code == "DH"))
    assert root.find("Dial/Number").text == dh.phone


@pytest.mark.parametrize(("digits", "language"), [("3011", "nl"), ("*3011", "en")])
def test_a_postcode_typed_ahead_during_the_greeting_is_put_through_at_once(client, db, digits,
                                                                           language):
    greeting = twiml(post(client, "/webhooks/twilio/voice/inbound", CALL)).find("Gather")
    root = twiml(post(client, greeting.get("action"), {**CALL, "Digits": digits}))
    assert root.find("Gather") is None  # no postcode prompt
    connecting = load_catalogue().text("connecting", language)
    assert root.find("Play").text == f"{PUBLIC}/sounds/{key_for(connecting, language)}.wav"
    rt = db.scalar(select(Meldkamer).where(Meldkamer.code == "RT"))  # Rotterdam-Rijnmond
    assert root.find("Dial/Number").text == rt.phone
    record = db.scalar(select(CallRecord).where(CallRecord.provider_call_id == CALL["CallSid"]))
    assert record.routing_reason.startswith("postcode: keyed postcode 3011")
    assert record.routing_reason.endswith("typed ahead during the greeting")


def test_star_alone_asks_for_the_postcode_in_english(client):
    greeting = twiml(post(client, "/webhooks/twilio/voice/inbound", CALL)).find("Gather")
    gather = twiml(post(client, greeting.get("action"), {**CALL, "Digits": "*"})).find("Gather")
    ask = load_catalogue().text("ask_postcode", "en")
    assert gather.find("Play").text == f"{PUBLIC}/sounds/{key_for(ask, 'en')}.wav"
    assert (gather.get("numDigits"), gather.get("finishOnKey")) == ("4", "#")
    assert "lang=en" in gather.get("action")


@pytest.mark.parametrize("url", ["/webhooks/twilio/voice/inbound", "/webhooks/twilio/sms",
                                 "/webhooks/twilio/voice/step?flow=free&record=1&stage=dial",
                                 "/webhooks/twilio/voice?delivery=1"])
def test_unsigned_or_forged_webhooks_are_refused_and_change_nothing(client, db, url):
    before = db.scalar(select(CallRecord.id).order_by(CallRecord.id.desc()).limit(1))
    assert client.post(url, data=CALL).status_code == 403
    assert client.post(url, data=CALL, headers={"X-Twilio-Signature": "forged"}).status_code \
        == 403
    assert post(client, url, CALL, token="another-account").status_code == 403
    assert db.scalar(select(CallRecord.id).order_by(CallRecord.id.desc()).limit(1)) == before


def test_a_tampered_state_gets_a_clear_400(client):
    response = post(client, "/webhooks/twilio/voice/step?flow=free&stage=dial", CALL)
    assert response.status_code == 400 and b"malformed call state" in response.data


def test_garbage_keys_count_as_no_input(client):
    root = twiml(post(client, "/webhooks/twilio/voice/inbound", CALL))
    root = twiml(post(client, root.find("Redirect").text, CALL))
    root = twiml(post(client, root.find("Gather").get("action"),
                      {**CALL, "Digits": "<script>"}))
    assert root.find("Gather").get("numDigits") == "4"  # asked again, not an error


def test_an_unknown_sound_is_404(client):
    assert client.get("/sounds/" + "0" * 64 + ".wav").status_code == 404
    assert client.get("/sounds/..%2Fsecret_key.wav").status_code == 404


# --- the voice message -----------------------------------------------------------------

@pytest.fixture
def voice_delivery(db: Session) -> Delivery:
    org = Organisation(name="Politie Voice", kind=OrganisationKind.POLICE)
    action = Action(kind=ActionKind.SUSPECT, urgency=Urgency.URGENT, status=ActionStatus.ACTIVE,
                    title_nl="Overval juwelier", description_nl="Man met rode jas.",
                    center_lat=52.09, center_lon=5.12, radius_m=1500, organisation=org,
                    meldkamer=db.scalar(select(Meldkamer).where(Meldkamer.code == "MN")),
                    started_at=datetime.now(UTC) - timedelta(minutes=5))
    person = Participant(phone="+31690005151", status=ParticipantStatus.VERIFIED)
    delivery = Delivery(action=action, participant=person, channel=Channel.VOICE,
                        status=DeliveryStatus.SENT, provider_id="CA" + "3" * 32,
                        sent_at=datetime.now(UTC) - timedelta(minutes=4))
    db.add(delivery)
    db.commit()
    return delivery


def test_the_voice_message_reads_the_action_and_puts_through_on_1(client, db, voice_delivery):
    call = {"CallSid": voice_delivery.provider_id, "To": "+31690005151"}
    root = twiml(post(client, f"/webhooks/twilio/voice?delivery={voice_delivery.id}", call))
    gather = root.find("Gather")
    assert gather.get("numDigits") == "1" and len(gather.findall("Play")) == 3
    root = twiml(post(client, gather.get("action"), {**call, "Digits": "1"}))
    mn = db.scalar(select(Meldkamer).where(Meldkamer.code == "MN"))
    assert root.find("Dial/Number").text == mn.phone
    record = db.scalar(select(CallRecord).where(CallRecord.provider_call_id == call["CallSid"]))
    assert record.action_id == voice_delivery.action_id and record.direction == "outbound"


# --- inbound SMS -------------------------------------------------------------------------

def sms(client, sender: str, body: str, *, sid: str | None = None, **extra: str) -> str | None:
    """The reply to a new inbound message (each its own MessageSid), or None for no reply."""
    sid = sid or "SM" + uuid.uuid4().hex
    root = twiml(post(client, "/webhooks/twilio/sms",
                      {"MessageSid": sid, "From": sender, "Body": body, **extra}))
    message = root.find("Message")
    return None if message is None else message.text


def test_stop_and_start_by_sms_in_dutch_and_english(client, db, voice_delivery):
    person = db.get(Participant, voice_delivery.participant_id)
    assert "geen Burgernet-berichten" in sms(client, person.phone, "stoppen")
    db.refresh(person)
    assert person.status == ParticipantStatus.STOPPED
    assert "Welkom terug" in sms(client, person.phone, " Start ")
    db.refresh(person)
    assert person.status == ParticipantStatus.VERIFIED
    assert "STOP" in sms(client, person.phone, "HELP")
    assert "niet aangemeld" in sms(client, "+31690009999", "STOP")


@pytest.mark.parametrize("sender", ["690005151", "31690005151", "0690005151"])
def test_a_sender_without_a_country_code_is_nobody(client, db, voice_delivery, sender):
    """Twilio sends From in E.164; these are not read as the participant +31690005151."""
    person = db.get(Participant, voice_delivery.participant_id)
    assert "niet aangemeld" in sms(client, sender, "STOP")
    assert "niet aan een Burgernet-actie" in sms(client, sender, "Man met rode jas")
    db.refresh(person)
    assert person.status == ParticipantStatus.VERIFIED
    assert db.scalar(select(Tip.id).where(Tip.action_id == voice_delivery.action_id)) is None


def test_a_text_becomes_a_tip_on_the_action_the_participant_was_sent(client, db,
                                                                    voice_delivery):
    reply = sms(client, "+31690005151", "Man met rode jas loopt richting station.")
    assert "tip is doorgegeven" in reply
    tip = db.scalar(select(Tip).where(Tip.action_id == voice_delivery.action_id))
    assert tip.text.startswith("Man met rode jas") and tip.source == "sms"


def test_a_text_from_someone_without_an_action_is_not_kept(client, db):
    assert "niet aan een Burgernet-actie koppelen" in sms(client, "+31690001234", "Ik zag iets")
    assert db.scalar(select(Tip.id).where(Tip.text == "Ik zag iets")) is None


@pytest.fixture
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        yield server


@pytest.fixture
def media_client(make_app: Callable[..., Flask], signed: dict[str, str],
                 media: MediaServer) -> FlaskClient:
    """The webhooks with the provider's API and media on a local host: reachable over http
    on loopback through the test-only allowance alone."""
    return make_app(**signed, twilio_base_url=media.url,
                    test_only_allow_loopback=True).test_client()


def _jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (40, 30), "red")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    raw = io.BytesIO()
    image.save(raw, format="JPEG", exif=exif)
    return raw.getvalue()


def test_an_mms_photo_is_fetched_stripped_of_its_metadata_and_kept(
        media_client, media, db, voice_delivery, settings):
    media.files["ME1"] = (_jpeg_with_exif(), "image/jpeg")
    media.files["ME2"] = (b"MZ\x90\x00 not an image", "image/jpeg")
    sms(media_client, "+31690005151", "Foto van de auto", NumMedia="2",
        MediaUrl0=f"{media.url}/api/ME1", MediaContentType0="image/jpeg",
        MediaUrl1=f"{media.url}/media/ME2", MediaContentType1="image/jpeg")
    tips = db.scalars(select(Tip).where(Tip.action_id == voice_delivery.action_id)).all()
    assert len(tips) == 1 and tips[0].source == "mms" and tips[0].text == "Foto van de auto"
    stored = settings.var_dir / "media" / "tips" / tips[0].media_path
    with Image.open(stored) as saved:
        assert saved.size == (40, 30) and not saved.getexif()
    requests = dict(media.requests)
    assert requests["/api/ME1"].startswith("Basic ")  # the provider's API gets our login
    assert requests["/media/ME1"] is None  # its CDN, another host, does not


@pytest.mark.parametrize("path", [
    "/redirect?to=https://evil.example/x.jpg",  # a redirect off the provider's hosts
    "/redirect?to=https://169.254.169.254/latest/meta-data",
    "/loop/0",  # redirects without end
    "/drip",  # a body that never ends
    "/big",  # more than 5 MB
])
def test_a_bad_media_link_keeps_the_text_and_drops_the_photo(
        media_client, media, db, voice_delivery, monkeypatch, caplog, path):
    monkeypatch.setattr("web.voice.MEDIA_DEADLINE", 1.0)
    reply = sms(media_client, "+31690005151", "kijk", NumMedia="1",
                MediaUrl0=f"{media.url}{path}", MediaContentType0="image/jpeg")
    assert "tip is doorgegeven" in reply
    [tip] = db.scalars(select(Tip).where(Tip.action_id == voice_delivery.action_id)).all()
    assert tip.source == "sms" and tip.media_path is None
    assert len(media.requests) <= 4  # at most three redirects followed
    assert "MMS attachment 0 not fetched" in caplog.text


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data", "https://169.254.169.254/latest/meta-data",
    "http://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME1",
    "https://evil.example/x.jpg", "https://10.0.0.1/x.jpg", "file:///etc/passwd"])
def test_media_off_the_provider_s_https_hosts_is_never_fetched(client, db, voice_delivery,
                                                                caplog, url):
    sms(client, "+31690005151", "kijk", NumMedia="1", MediaUrl0=url,
        MediaContentType0="image/png")
    assert "not fetched: url:" in caplog.text  # refused before any connection was made
    assert db.scalar(select(Tip).where(Tip.action_id == voice_delivery.action_id)).source == "sms"


def test_a_failure_inside_the_flow_still_puts_the_caller_through(client, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("ivr.flows.Flows.start_free", broken)
    root = twiml(post(client, "/webhooks/twilio/voice/inbound", CALL))
    assert root.find("Dial").text == "+31690000103"  # MN, the national fallback


@pytest.mark.parametrize("url", ["/webhooks/twilio/voice/inbound",
                                 "/webhooks/twilio/voice/step?flow=free&record=1&stage=greeting",
                                 "/webhooks/twilio/voice/whisper?flow=free&record=1&stage=dial"])
def test_a_database_failure_inside_the_flow_still_answers_twiml(client, monkeypatch, url):
    """A failed write leaves the request's session needing a rollback; committing it at the
    end of the request raised, and Twilio got a 500 instead of the call put through."""
    def failing_write(flows, *_args, **_kwargs):
        flows.session.add(CallRecord())  # no direction, no transport: NOT NULL refuses it
        flows.session.flush()

    for name in ("start_free", "advance", "whisper"):
        monkeypatch.setattr(f"ivr.flows.Flows.{name}", failing_write)
    response = post(client, url, {**CALL, "Digits": "3441"})
    assert response.status_code == 200 and response.mimetype == "text/xml"
    if "whisper" not in url:
        assert twiml(response).find("Dial").text == "+31690000103"  # MN, the national fallback


# --- replayed webhooks do nothing the second time --------------------------------------

def _records(db, call_sid: str) -> list[CallRecord]:
    return list(db.scalars(select(CallRecord).where(CallRecord.provider_call_id == call_sid)))


def test_a_replayed_inbound_call_makes_no_second_call_record(client, db):
    first = twiml(post(client, "/webhooks/twilio/voice/inbound", CALL))
    again = twiml(post(client, "/webhooks/twilio/voice/inbound", CALL))
    (record,) = _records(db, CALL["CallSid"])
    assert first.find("Gather").get("action") == again.find("Gather").get("action")
    assert f"record={record.id}" in again.find("Gather").get("action")


def test_a_replayed_voice_message_makes_no_second_call_record(client, db, voice_delivery):
    call = {"CallSid": voice_delivery.provider_id, "To": "+31690005151"}
    url = f"/webhooks/twilio/voice?delivery={voice_delivery.id}"
    twiml(post(client, url, call))
    again = twiml(post(client, url, call))
    assert again.find("Gather") is not None
    assert len(_records(db, call["CallSid"])) == 1


def test_a_replayed_step_of_a_call_that_is_over_changes_nothing(client, db):
    root = twiml(post(client, "/webhooks/twilio/voice/inbound", CALL))
    root = twiml(post(client, root.find("Redirect").text, CALL))
    root = twiml(post(client, root.find("Gather").get("action"), {**CALL, "Digits": "3011"}))
    busy_url = root.find("Dial").get("action")
    root = twiml(post(client, busy_url, {**CALL, "DialCallStatus": "busy"}))
    whisper_url = root.find("Dial/Number").get("url")
    twiml(post(client, whisper_url, {"CallSid": "CA" + "4" * 32}))
    twiml(post(client, root.find("Dial").get("action"), {**CALL, "DialCallStatus": "completed"}))
    post(client, "/webhooks/twilio/status", {"CallSid": CALL["CallSid"],
                                              "CallStatus": "completed"})
    (record,) = _records(db, CALL["CallSid"])
    before = (record.meldkamer_id, record.routing_reason, record.outcome, record.connected_at,
              record.ended_at)
    assert record.outcome == "connected" and record.ended_at is not None

    replayed = twiml(post(client, busy_url, {**CALL, "DialCallStatus": "busy"}))
    assert replayed.find("Dial") is None and replayed.find("Hangup") is not None
    twiml(post(client, whisper_url, {"CallSid": "CA" + "4" * 32}))
    db.refresh(record)
    assert (record.meldkamer_id, record.routing_reason, record.outcome, record.connected_at,
            record.ended_at) == before


def _forget_replays(redis_client: redis.Redis) -> None:
    """Redis emptied: only the marks of webhooks taken go, as after a restart without them."""
    for key in redis_client.scan_iter("webhook-seen:*"):
        redis_client.delete(key)


@pytest.mark.parametrize("redis_emptied", [False, True])
def test_a_replayed_tip_is_kept_once_and_answered_once(client, db, voice_delivery,
                                                       redis_client, redis_emptied):
    sid = "SM" + "7" * 32
    assert "tip is doorgegeven" in sms(client, "+31690005151", "Rode jas bij station", sid=sid)
    if redis_emptied:
        _forget_replays(redis_client)
    assert sms(client, "+31690005151", "Rode jas bij station", sid=sid) is None
    tips = db.scalars(select(Tip).where(Tip.action_id == voice_delivery.action_id)).all()
    assert [(tip.text, tip.message_sid) for tip in tips] == [("Rode jas bij station", sid)]


@pytest.mark.parametrize("redis_emptied", [False, True])
def test_a_replayed_mms_is_not_fetched_again(media_client, media, db, voice_delivery,
                                             redis_client, redis_emptied):
    raw = io.BytesIO()
    Image.new("RGB", (20, 20), "blue").save(raw, format="PNG")
    media.files["ME2"] = (raw.getvalue(), "image/png")
    photo = {"NumMedia": "1", "MediaUrl0": f"{media.url}/media/ME2",
             "MediaContentType0": "image/png"}
    sid = "MM" + "8" * 32
    assert sms(media_client, "+31690005151", "", sid=sid, **photo) is not None
    if redis_emptied:
        _forget_replays(redis_client)
    assert sms(media_client, "+31690005151", "", sid=sid, **photo) is None
    assert [path for path, _auth in media.requests] == ["/media/ME2"]
    tips = db.scalars(select(Tip).where(Tip.action_id == voice_delivery.action_id)).all()
    assert len(tips) == 1 and tips[0].source == "mms"


def test_a_replayed_stop_sends_no_second_reply(client, db, voice_delivery):
    sid = "SM" + "5" * 32
    assert "geen Burgernet-berichten" in sms(client, "+31690005151", "STOP", sid=sid)
    assert sms(client, "+31690005151", "STOP", sid=sid) is None


def test_a_start_replayed_after_a_later_stop_does_not_sign_up_again(client, db, voice_delivery,
                                                                    redis_client):
    person = db.get(Participant, voice_delivery.participant_id)
    start = "SM" + "6" * 32
    sms(client, person.phone, "STOP")
    assert "Welkom terug" in sms(client, person.phone, "START", sid=start)
    sms(client, person.phone, "STOP")
    _forget_replays(redis_client)  # the database alone must say no
    assert sms(client, person.phone, "START", sid=start) is None
    db.refresh(person)
    assert person.status == ParticipantStatus.STOPPED


# --- answering machine detection ---------------------------------------------------------

def _answered_by(client, delivery: Delivery, verdict: str | None, sid: str | None = None):
    call = {"CallSid": sid or delivery.provider_id, "To": "+31690005151",
            "CallStatus": "in-progress"}
    if verdict is not None:
        call |= {"AnsweredBy": verdict, "MachineDetectionDuration": "2400"}
    return twiml(post(client, f"/webhooks/twilio/voice?delivery={delivery.id}", call))


@pytest.mark.parametrize("verdict", ["machine_end_beep", "machine_end_silence",
                                     "machine_end_other", "machine_start"])
def test_a_voicemail_gets_the_message_once_without_the_menu(client, db, voice_delivery,
                                                           verdict):
    root = _answered_by(client, voice_delivery, verdict)
    assert [child.tag for child in root] == ["Play", "Play", "Hangup"]  # intro, message
    intro = load_catalogue().text("outbound_intro", "nl")
    assert root[0].text == f"{PUBLIC}/sounds/{key_for(intro, 'nl')}.wav"
    db.refresh(voice_delivery)
    assert voice_delivery.status == DeliveryStatus.VOICEMAIL
    (record,) = _records(db, voice_delivery.provider_id)
    assert record.outcome == "voicemail" and record.direction == "outbound"
    # the call's end does not turn it into "answered by a person"
    post(client, "/webhooks/twilio/status", {"CallSid": voice_delivery.provider_id,
                                              "CallStatus": "completed"})
    db.refresh(voice_delivery)
    db.refresh(record)
    assert voice_delivery.status == DeliveryStatus.VOICEMAIL
    assert record.outcome == "voicemail" and record.ended_at is not None


@pytest.mark.parametrize("verdict", ["human", "unknown", None])
def test_a_person_gets_the_menu(client, db, voice_delivery, verdict):
    root = _answered_by(client, voice_delivery, verdict)
    assert root.find("Gather").get("numDigits") == "1"
    post(client, "/webhooks/twilio/status", {"CallSid": voice_delivery.provider_id,
                                              "CallStatus": "completed"})
    db.refresh(voice_delivery)
    assert voice_delivery.status == DeliveryStatus.ANSWERED


def test_a_fax_is_hung_up_on_and_the_participant_gets_an_sms(client, db, voice_delivery):
    root = _answered_by(client, voice_delivery, "fax")
    assert [child.tag for child in root] == ["Hangup"]
    db.refresh(voice_delivery)
    assert (voice_delivery.status, voice_delivery.provider_error) == (
        DeliveryStatus.FAILED, "fax")
    sms_delivery = db.scalar(select(Delivery).where(
        Delivery.action_id == voice_delivery.action_id, Delivery.channel == Channel.SMS))
    assert sms_delivery is not None and sms_delivery.status == DeliveryStatus.QUEUED


def test_answered_by_in_a_status_callback_counts_as_voicemail(client, db, voice_delivery):
    """Also when the callback says it first, or alone (the voice webhook failed)."""
    post(client, "/webhooks/twilio/status", {"CallSid": voice_delivery.provider_id,
                                              "CallStatus": "completed",
                                              "AnsweredBy": "machine_end_beep"})
    db.refresh(voice_delivery)
    assert voice_delivery.status == DeliveryStatus.VOICEMAIL


def test_a_voicemail_before_its_call_was_recorded_counts_once_it_is(client, db, voice_delivery,
                                                                   redis_client):
    from outbound.callbacks import apply_early

    sid = voice_delivery.provider_id
    voice_delivery.status, voice_delivery.provider_id = DeliveryStatus.SENDING, None
    db.commit()
    _answered_by(client, voice_delivery, "machine_end_beep", sid)
    db.refresh(voice_delivery)
    assert (voice_delivery.status, voice_delivery.provider_id) == (DeliveryStatus.SENDING, None)
    voice_delivery.status, voice_delivery.provider_id = DeliveryStatus.SENT, sid  # the batch
    db.commit()
    apply_early(db, redis_client, [sid], datetime.now(UTC))
    db.commit()
    db.refresh(voice_delivery)
    assert voice_delivery.status == DeliveryStatus.VOICEMAIL
