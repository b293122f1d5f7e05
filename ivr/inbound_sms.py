"""Inbound SMS on the free number's service: STOP, START, HELP, and tips with photos.

The sender's own phone proves who they are, so STOP and START need no code. Any other text is
a tip on the action this participant was sent most recently; a tip that cannot be tied to an
action is not kept (it would only be personal data without a purpose), and the reply says to
call instead.

A message the provider delivers twice (its retry, or a captured request replayed) acts once:
its id is kept on its tips (unique) and in the audit event of its STOP or START, and the
second time nothing changes and nothing is answered (outcome "repeat").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import participants
from core.images import MAX_BYTES, ImageRejected, clean_image, store_image
from core.models import Language, Participant, ParticipantStatus, Tip
from routing.caller import parse_caller
from routing.resolve import recent_action

STOP_WORDS = frozenset({"STOP", "STOPPEN", "AFMELDEN", "UITSCHRIJVEN", "UNSUBSCRIBE", "CANCEL",
                        "END", "QUIT", "STOPALL"})
START_WORDS = frozenset({"START", "AANMELDEN", "UNSTOP", "HERVATTEN", "RESUME"})
HELP_WORDS = frozenset({"HELP", "HULP", "INFO"})

#: Photo types taken from MMS; each is decoded and saved again, which drops EXIF and GPS data.
IMAGE_TYPES = {"image/jpeg": ("JPEG", ".jpg"), "image/png": ("PNG", ".png"),
               "image/gif": ("PNG", ".png"), "image/webp": ("JPEG", ".jpg")}
MMS_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
MAX_MEDIA_BYTES = MAX_BYTES
MAX_TIP_CHARS = 2000

REPLIES = {
    "stopped": {"nl": "U ontvangt geen Burgernet-berichten meer. Stuur START om weer mee te doen.",
                "en": "You will no longer receive Burgernet messages. Text START to rejoin."},
    "started": {"nl": "Welkom terug bij Burgernet. Stuur STOP om af te melden.",
                "en": "Welcome back to Burgernet. Text STOP to unsubscribe."},
    "not_registered": {
        "nl": "Dit nummer is niet aangemeld bij Burgernet. Aanmelden kan op de website.",
        "en": "This number is not registered with Burgernet. You can sign up on the website."},
    "help": {"nl": "Burgernet: STOP = afmelden, START = weer aanmelden. Iets gezien bij een "
                   "actie? Stuur een bericht of foto, of bel gratis {number}. Spoed: bel 112.",
             "en": "Burgernet: STOP = unsubscribe, START = rejoin. Seen something during an "
                   "action? Send a text or photo, or call {number} free. Emergency: call 112."},
    "tip": {"nl": "Bedankt, uw tip is doorgegeven aan de meldkamer. Spoed? Bel 112.",
            "en": "Thank you, your tip has been passed to the control room. Emergency? Call 112."},
    "no_action": {"nl": "Wij konden uw bericht niet aan een Burgernet-actie koppelen. Iets gezien? "
                        "Bel gratis {number}. Spoed: bel 112.",
                  "en": "We could not link your message to a Burgernet action. Seen something? "
                        "Call {number} free. Emergency: call 112."},
}


@dataclass(frozen=True)
class Media:
    """One MMS attachment as fetched from the provider."""

    content: bytes
    content_type: str


@dataclass(frozen=True)
class SmsResult:
    """What happened, and the reply to send back (in the participant's language)."""

    outcome: str
    reply: str
    tip_ids: tuple[int, ...] = ()
    rejected_media: int = 0


class MediaRejected(ValueError):
    """An attachment that is not a photo we accept."""


def seen(session: Session, message_sid: str | None) -> bool:
    """Whether the message MESSAGE_SID already left tips (cheap: asked before its photos are
    fetched again)."""
    return message_sid is not None and session.scalar(
        select(Tip.id).where(Tip.message_sid == message_sid).limit(1)) is not None


def handle_sms(session: Session, sender: str, body: str, *, now: datetime, free_number: str,
               media: list[Media] | None = None, media_dir: Path | None = None,
               recent: timedelta = timedelta(hours=6), sender_national: str | None = None,
               message_sid: str | None = None) -> SmsResult:
    """Act on one inbound SMS or MMS from SENDER, once per MESSAGE_SID.

    SENDER is read as `routing.caller.parse_caller` reads a caller ID: international only,
    unless SENDER_NATIONAL says the transport sends national numbers (Twilio does not), so a
    "612345678" never stops or speaks for the participant +31612345678."""
    phone = parse_caller(sender, sender_national)
    participant = (session.scalar(select(Participant).where(Participant.phone == phone))
                   if phone else None)
    language = (Language(participant.language).value if participant else "nl")
    word = " ".join(body.split()).upper().rstrip(".!")

    def reply(key: str) -> str:
        return REPLIES[key][language].format(number=free_number)

    if seen(session, message_sid) or (
            participant is not None and message_sid is not None
            and word in STOP_WORDS | START_WORDS
            and participants.said_before(session, participant, message_sid)):
        return SmsResult("repeat", "")
    if word in STOP_WORDS:
        if participant is None:
            return SmsResult("not_registered", reply("not_registered"))
        if participant.status != ParticipantStatus.STOPPED:
            participants.stop(session, participant, now, message_sid)
        return SmsResult("stopped", reply("stopped"))
    if word in START_WORDS:
        if participant is None:
            return SmsResult("not_registered", reply("not_registered"))
        participants.start(session, participant, now, message_sid)
        return SmsResult("started", reply("started"))
    if word in HELP_WORDS:
        return SmsResult("help", reply("help"))
    if participant is None:
        return SmsResult("no_action", reply("no_action"))
    action_id = recent_action(session, participant.id, now, recent)
    if action_id is None:
        return SmsResult("no_action", reply("no_action"))
    text = body.strip()[:MAX_TIP_CHARS]
    tips: list[Tip] = []
    rejected = 0
    for item in media or ():
        try:
            path, content_type = _store_photo(item, media_dir)
        except MediaRejected:
            rejected += 1
            continue
        tips.append(Tip(action_id=action_id, participant_id=participant.id, source="mms",
                        text=text if not tips else "", media_path=path,
                        media_type=content_type, received_at=now))
    if not tips:
        if not text:
            return SmsResult("empty", reply("help"), rejected_media=rejected)
        tips.append(Tip(action_id=action_id, participant_id=participant.id, source="sms",
                        text=text, received_at=now))
    for part, tip in enumerate(tips):
        tip.message_sid, tip.message_part = message_sid, part
    try:
        with session.begin_nested():
            session.add_all(tips)
    except IntegrityError:  # the same message, taken meanwhile by another request
        _remove_photos(tips, media_dir)
        return SmsResult("repeat", "")
    return SmsResult("tip", reply("tip"), tuple(tip.id for tip in tips), rejected)


def _remove_photos(tips: list[Tip], media_dir: Path | None) -> None:
    for tip in tips:
        if tip.media_path and media_dir is not None:
            (media_dir / tip.media_path).unlink(missing_ok=True)


def _store_photo(item: Media, media_dir: Path | None) -> tuple[str, str]:
    """Decode, strip metadata by re-encoding, and save under a random name."""
    kind = IMAGE_TYPES.get(item.content_type.split(";")[0].strip().lower())
    if kind is None or media_dir is None:
        raise MediaRejected(f"{item.content_type} is not a photo type we accept")
    try:
        clean = clean_image(item.content, accept=MMS_FORMATS, output=kind[0])
    except ImageRejected as exc:
        raise MediaRejected(str(exc)) from None
    return store_image(clean, media_dir), clean.content_type
