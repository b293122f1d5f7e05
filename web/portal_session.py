"""Who is logged in to the participant portal: a participant id and that participant's session
key in the signed session cookie, set only after an SMS code, short-lived, and replaced whole
at log-in and log-out. The key, kept with the participant, binds the cookie to the person
rather than to a row id: it dies with their data, and logging out clears it, which ends every
portal session they have (a copy of the cookie kept from before logging out opens nothing).

Participants are not Flask-Login users: staff sessions and their roles never mix with them.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Concatenate, ParamSpec

import phonenumbers
from flask import Blueprint, flash, jsonify, redirect, session, url_for
from flask.typing import ResponseReturnValue

from core.models import Participant
from outbound.codes import CodeRequests
from web.context import db, runtime
from web.i18n import LANGUAGES, translate

bp = Blueprint("portal", __name__, url_prefix="/deelnemen")

PARTICIPANT = "participant_id"
KEY = "participant_key"
SINCE = "participant_since"
SEEN = "participant_seen"
#: The code asked for and not yet used: number (E.164), purpose, when it was sent.
PENDING = "portal_pending"

P = ParamSpec("P")
#: A view that gets the logged-in participant first (see `participant_required`).
ParticipantView = Callable[Concatenate[Participant, P], ResponseReturnValue]


def now() -> datetime:
    return datetime.now(UTC)


def secret() -> str:
    """The key codes are hashed and sealed with (the app's SECRET_KEY)."""
    return runtime().settings.secret_key


def code_requests() -> CodeRequests | None:
    """The Redis-held limits on codes; None without Redis (then no code can be sent)."""
    client = runtime().redis
    return None if client is None else CodeRequests(
        client, secret(), budget=runtime().settings.code_sms_per_hour)


def reset_session() -> None:
    """A new session but for the chosen language: nothing of the old one carries over."""
    language = session.get("lang")
    session.clear()
    if language in LANGUAGES:
        session["lang"] = language


def begin(participant: Participant) -> None:
    """Log PARTICIPANT in, in a fresh session (the caller's database session writes)."""
    reset_session()
    if participant.session_key is None:
        participant.session_key = secrets.token_urlsafe(32)
    stamp = int(time.time())
    session[PARTICIPANT], session[SINCE], session[SEEN] = participant.id, stamp, stamp
    session[KEY] = participant.session_key
    session.setdefault("lang", participant.language.value)


def end_everywhere(participant: Participant) -> None:
    """End every portal session of PARTICIPANT, this one included (the caller writes)."""
    participant.session_key = None
    reset_session()


@bp.before_request
def _expire() -> None:
    """Log out a session that sat idle or lived too long (PORTAL_IDLE_MINUTES,
    PORTAL_SESSION_HOURS); otherwise note this request."""
    if PARTICIPANT not in session:
        return
    settings = runtime().settings
    stamp = time.time()
    since, seen = float(session.get(SINCE, 0)), float(session.get(SEEN, 0))
    if stamp - seen > settings.portal_idle_minutes * 60 \
            or stamp - since > settings.portal_session_hours * 3600:
        reset_session()
        flash("Uw sessie is verlopen; log opnieuw in.")
    else:
        session[SEEN] = int(stamp)


def current_participant() -> Participant | None:
    """The logged-in participant, if their data still exists and the session is still theirs."""
    participant_id, key = session.get(PARTICIPANT), session.get(KEY)
    if not isinstance(participant_id, int) or not isinstance(key, str):
        return None
    participant = db().get(Participant, participant_id)
    if participant is None or participant.session_key is None \
            or not hmac.compare_digest(participant.session_key, key):
        return None
    return participant


def participant_required(write: bool = False, api: bool = False
                         ) -> Callable[[ParticipantView[P]], Callable[P, ResponseReturnValue]]:
    """The view gets the logged-in participant as its first argument; anyone else goes to
    the log-in page (an API call gets 401). WRITE opens the writing session first."""
    def decorate(view: ParticipantView[P]) -> Callable[P, ResponseReturnValue]:
        @wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            db(write=write)
            participant = current_participant()
            if participant is None:
                if PARTICIPANT in session:
                    reset_session()
                if api:
                    message = translate("Log eerst in.")
                    return jsonify(ok=False, error=message), 401
                flash("Log in om uw gegevens te zien.")
                return redirect(url_for("portal.login"))
            return view(participant, *args, **kwargs)
        return guarded
    return decorate


def national(e164: str) -> str:
    """06 12345678, as the participant knows their own number."""
    return str(phonenumbers.format_number(phonenumbers.parse(e164),
                                          phonenumbers.PhoneNumberFormat.NATIONAL))
