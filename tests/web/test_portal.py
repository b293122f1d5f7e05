"""The participant portal, request by request: codes travel the real SMS path (an RQ job on
the SMS queue, a worker, the Twilio-compatible fake on loopback) and are read from what the
fake received, never from the database."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from py_vapid.utils import b64urlencode
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import JSON, Engine, Enum, String, Text, cast, func, select
from sqlalchemy.orm import Session, sessionmaker
from wtforms.fields.core import UnboundField

from core.models import (
    Action,
    ActionKind,
    AuditEvent,
    Base,
    CallDirection,
    CallRecord,
    Channel,
    Delivery,
    InquiryReaction,
    LocationKind,
    Meldkamer,
    Organisation,
    Participant,
    ParticipantLocation,
    ParticipantStatus,
    PushSubscription,
    Tip,
    Urgency,
)
from core.participants import MAX_ATTEMPTS, RESEND_AFTER, purge_unverified
from core.seed import seed_demo
from core.settings import Settings
from core.targeting import QUIET_HOURS_RULE
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioServer
from outbound.providers.twilio_rest import TwilioRestProvider
from outbound.queues import CODE_QUEUE
from outbound.runtime import Runtime
from outbound.worker import BatchWorker
from tests.web.helpers import csrf_token
from web import create_app, portal, portal_account, portal_forms, steady
from web.i18n import ENGLISH

PHONE, E164 = "06 12345678", "+31612345678"
OTHER, OTHER_E164 = "06 87654321", "+31687654321"
TEMPLATES = Path(__file__).parents[2] / "web" / "templates" / "portal"


@dataclass
class Sms:
    """The SMS side: the queue, a worker in this process, and the fake's received messages."""

    server: FakeTwilioServer
    connection: redis.Redis
    runtime: Runtime

    def deliver(self) -> None:
        queue = Queue(CODE_QUEUE, connection=self.connection, serializer=JSONSerializer)
        BatchWorker([queue], connection=self.connection, serializer=JSONSerializer,
                    runtime=self.runtime).work(burst=True)

    def received(self, to: str) -> list[str]:
        self.deliver()
        return [r.body for r in self.server.fake.records if r.to == to]

    def code(self, to: str = E164) -> str:
        """The code in the last SMS the phone received."""
        bodies = self.received(to)
        assert bodies, f"no SMS reached {to}"
        return re.search(r"code is (\d{6})", bodies[-1])[1]  # type: ignore[index]


@pytest.fixture
def sms(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
        redis_client: redis.Redis) -> Iterator[Sms]:
    with FakeTwilioServer() as server:
        def twilio() -> TwilioRestProvider:
            return TwilioRestProvider(ACCOUNT_SID, AUTH_TOKEN, "+31690000999",
                                      base_url=server.url)

        runtime = Runtime(settings, engine, sessions, redis_client,
                          providers={Channel.SMS: twilio})
        yield Sms(server, redis_client, runtime)
        runtime.close()


def _post(client: FlaskClient, path: str, data: dict[str, object] | None = None,
          form_page: str | None = None, **kwargs: object):
    token = csrf_token(client, form_page or path)
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)


def _signup(client: FlaskClient, phone: str = PHONE, postcode: str = "3511",
            language: str = "nl", consent: bool = True, query: str = ""):
    data = {"phone": phone, "postcode": postcode, "language": language}
    if consent:
        data["consent"] = "y"
    return _post(client, "/deelnemen/aanmelden" + query, data, "/deelnemen/aanmelden")


def _enter(client: FlaskClient, code: str):
    return _post(client, "/deelnemen/code", {"code": code})


def _join(client: FlaskClient, sms: Sms, phone: str = PHONE, e164: str = E164,
          postcode: str = "3511") -> None:
    """Sign up and confirm the code: CLIENT is then logged in as that participant."""
    assert _signup(client, phone, postcode).status_code == 302
    assert _enter(client, sms.code(e164)).headers["Location"] == "/deelnemen/mijn"


def _participant(db: Session, phone: str = E164) -> Participant | None:
    db.expire_all()
    return db.scalar(select(Participant).where(Participant.phone == phone))


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def _forget_resend_wait(connection: redis.Redis, db: Session, phone: str = E164) -> None:
    """As if a minute passed: the request limit's one-a-minute key and the code's send time."""
    for key in connection.scan_iter("portal-code:recent:*"):
        connection.delete(key)
    participant = _participant(db, phone)
    if participant is not None and participant.code_sent_at is not None:
        participant.code_sent_at -= RESEND_AFTER + timedelta(seconds=1)
        db.commit()


def _page(response) -> str:
    return response.get_data(as_text=True)


def _same(page: str, number: str) -> str:
    """PAGE without what differs by design: the number typed and the CSRF tokens."""
    return re.sub(r'="[\w-]+\.[\w-]+\.[\w-]+"', '="token"', page) \
        .replace(number, "N")


# --- 1. signing up -------------------------------------------------------------------

def test_signing_up_sends_a_code_by_sms_that_confirms_the_number_and_logs_in(
        client: FlaskClient, sms: Sms, db: Session, redis_client: redis.Redis) -> None:
    form = _page(client.get("/deelnemen/aanmelden"))
    assert 'id="phone"' in form and 'id="postcode"' in form and 'id="consent"' in form
    assert "Wat wij bewaren, en waarom" in form
    response = _signup(client)
    assert response.status_code == 302 and response.headers["Location"] == "/deelnemen/code"
    participant = _participant(db)
    assert participant.status == ParticipantStatus.PENDING
    assert [(p.kind, p.pc4) for p in participant.locations] == [(LocationKind.HOME, "3511")]
    code = sms.code()
    assert participant.code_hash and code not in participant.code_hash
    assert code.encode() not in b"".join(redis_client.dump(k) or b""
                                         for k in redis_client.scan_iter())
    page = _page(client.get("/deelnemen/code"))
    assert "Wij hebben een sms met een code gestuurd naar 06 12345678." in page
    response = _enter(client, code)
    assert response.headers["Location"] == "/deelnemen/mijn"
    participant = _participant(db)
    assert participant.status == ParticipantStatus.VERIFIED
    with client.session_transaction() as session:
        assert session["participant_id"] == participant.id and "portal_pending" not in session
    page = _page(client.get("/deelnemen/mijn"))
    assert "Welkom bij Burgernet! Uw nummer is bevestigd." in page and "06 12345678" in page
    events = db.scalars(select(AuditEvent).where(AuditEvent.object_type == "participant",
                                                 AuditEvent.object_id == str(participant.id))
                        .order_by(AuditEvent.id)).all()
    assert [(e.verb, e.actor) for e in events] == [
        ("register", f"participant:{participant.id}"),
        ("verify", f"participant:{participant.id}")]


def test_a_six_character_postcode_is_read_as_its_four_digit_area(
        client: FlaskClient, sms: Sms, db: Session) -> None:
    assert _signup(client, postcode="3512 ab", language="en").status_code == 302
    participant = _participant(db)
    assert participant.locations[0].pc4 == "3512" and participant.language == "en"
    assert sms.received(E164)[-1].startswith("Your Burgernet code is")


@pytest.mark.parametrize(("field", "fields", "message"), [
    ("phone", {"phone": ""}, "Vul uw mobiele nummer in."),
    ("phone", {"phone": "hallo daar"}, "Dit is geen geldig telefoonnummer."),
    ("phone", {"phone": "06 123"}, "Dit is geen geldig telefoonnummer."),
    ("phone", {"phone": "020 123 4567"}, "Alleen Nederlandse mobiele nummers"),
    ("phone", {"phone": "+44 7911 123456"}, "Alleen Nederlandse mobiele nummers"),
    ("phone", {"phone": "+32 470 12 34 56"}, "Alleen Nederlandse mobiele nummers"),
    ("phone", {"phone": "06 91234567"}, "Dit is geen geldig telefoonnummer."),
    ("postcode", {"postcode": ""}, "Vul uw postcode in."),
    ("postcode", {"postcode": "35111"}, "Vul een postcode in zoals 3511 of 3511 AB."),
    ("postcode", {"postcode": "8999"}, "Postcode 8999 bestaat niet."),
    ("postcode", {"postcode": "8999 XY"}, "Postcode 8999 XY bestaat niet."),
    ("consent", {"consent": False}, "Zonder uw toestemming kunnen wij u niet aanmelden."),
    ("language", {"language": "fr"}, "Kies een van de mogelijkheden."),
])
def test_bad_sign_up_input_is_refused_in_dutch_keeping_what_was_typed(
        client: FlaskClient, sms: Sms, db: Session, field: str, fields: dict[str, object],
        message: str) -> None:
    values = {"phone": PHONE, "postcode": "3511", "language": "nl", "consent": True, **fields}
    response = _signup(client, **values)  # type: ignore[arg-type]
    page = _page(response)
    assert response.status_code == 400
    assert re.search(rf'data-testid="error-{field}">{re.escape(message)}', page), page
    if values["phone"]:
        assert f'value="{values["phone"]}"' in page
    if values["postcode"]:
        assert f'value="{values["postcode"]}"' in page
    assert db.scalar(select(func.count()).select_from(Participant)) == 0
    assert sms.received(E164) == []


def test_sign_up_messages_are_in_english_with_lang_en(client: FlaskClient, sms: Sms) -> None:
    page = _page(_signup(client, phone="020 123 4567", postcode="8999", consent=False,
                         query="?lang=en"))
    assert "Only Dutch mobile numbers (starting with 06) can take part." in page
    assert "Postcode 8999 does not exist." in page
    assert "Without your consent we cannot sign you up." in page
    assert "What we keep, and why" in page


def test_a_form_without_its_csrf_token_is_refused(client: FlaskClient, sms: Sms,
                                                  db: Session) -> None:
    response = client.post("/deelnemen/aanmelden", data={
        "phone": PHONE, "postcode": "3511", "language": "nl", "consent": "y"})
    assert response.status_code == 400
    assert _participant(db) is None and sms.received(E164) == []


# --- 2. the code ---------------------------------------------------------------------

def test_a_wrong_code_says_how_many_tries_are_left_then_a_new_code_is_needed(
        client: FlaskClient, sms: Sms, db: Session, redis_client: redis.Redis) -> None:
    _signup(client)
    code = sms.code()
    for left in range(MAX_ATTEMPTS - 1, 0, -1):
        response = _enter(client, _wrong(code))
        assert response.status_code == 400
        assert f"Deze code klopt niet. U kunt het nog {left} keer proberen." in _page(response)
    response = _enter(client, _wrong(code))
    assert "Deze code klopt niet en is nu ongeldig. Vraag een nieuwe code aan." in \
        _page(response)
    assert 'id="resend-form" class="renew"' in _page(response)
    assert "Vraag een nieuwe code aan." in _page(_enter(client, code))
    assert _participant(db).status == ParticipantStatus.PENDING
    _forget_resend_wait(redis_client, db)
    assert _post(client, "/deelnemen/code/opnieuw", form_page="/deelnemen/code") \
        .headers["Location"] == "/deelnemen/code"
    new = sms.code()
    assert _enter(client, new).headers["Location"] == "/deelnemen/mijn"


@pytest.mark.parametrize(("code", "message"), [
    ("", "Vul de code uit de sms in."), ("12ab56", "De code bestaat uit 6 cijfers."),
    ("1234567", "De code bestaat uit 6 cijfers.")])
def test_a_code_that_is_not_six_digits_is_refused_without_using_a_try(
        client: FlaskClient, sms: Sms, redis_client: redis.Redis, code: str,
        message: str) -> None:
    _signup(client)
    response = _enter(client, code)
    assert response.status_code == 400 and message in _page(response)
    assert f'value="{code}"' in _page(response)
    assert "U kunt het nog 4 keer" in _page(_enter(client, _wrong(sms.code())))


def test_an_expired_code_offers_a_new_one(client: FlaskClient, sms: Sms, db: Session,
                                          redis_client: redis.Redis) -> None:
    _signup(client)
    code = sms.code()
    with client.session_transaction() as session:
        pending = dict(session["portal_pending"])
        pending["sent_at"] -= 11 * 60
        session["portal_pending"] = pending
    participant = _participant(db)
    participant.code_expires_at = datetime.now(UTC) - timedelta(minutes=1)
    db.commit()
    response = _enter(client, code)
    assert "Deze code is verlopen. Vraag een nieuwe code aan." in _page(response)
    assert 'id="resend"' in _page(response)
    _forget_resend_wait(redis_client, db)
    _post(client, "/deelnemen/code/opnieuw", form_page="/deelnemen/code")
    assert "Wij hebben een nieuwe code gestuurd." in _page(client.get("/deelnemen/code"))
    assert _enter(client, sms.code()).headers["Location"] == "/deelnemen/mijn"


def test_a_sign_up_purged_when_its_code_expired_is_made_again_by_a_new_code(
        client: FlaskClient, sms: Sms, db: Session, redis_client: redis.Redis) -> None:
    _signup(client, postcode="3512", language="en")
    sms.code()
    participant = _participant(db)
    participant.code_expires_at = datetime.now(UTC) - timedelta(minutes=1)
    db.commit()
    assert [e.phone for e in purge_unverified(db, datetime.now(UTC))] == [E164]
    db.commit()
    assert _participant(db) is None
    _forget_resend_wait(redis_client, db)
    _post(client, "/deelnemen/code/opnieuw", form_page="/deelnemen/code")
    assert "We have sent a new code." in _page(client.get("/deelnemen/code?lang=en"))
    assert _enter(client, sms.code()).headers["Location"] == "/deelnemen/mijn"
    again = _participant(db)
    assert again.status == ParticipantStatus.VERIFIED and again.language == "en"
    assert [(p.kind, p.pc4) for p in again.locations] == [(LocationKind.HOME, "3512")]


def test_the_code_page_without_a_code_asked_for_goes_to_the_login(client: FlaskClient) -> None:
    response = client.get("/deelnemen/code")
    assert response.headers["Location"] == "/deelnemen/inloggen"


# --- rate limits -----------------------------------------------------------------------

def test_codes_are_limited_to_one_a_minute_and_five_a_day_per_number(
        client: FlaskClient, sms: Sms, db: Session, redis_client: redis.Redis) -> None:
    _signup(client)
    again = _signup(client)
    assert again.status_code == 429
    assert "U heeft net een code gevraagd. Wacht een minuut" in _page(again)
    for _ in range(4):
        _forget_resend_wait(redis_client, db)
        assert _signup(client).status_code == 302
    _forget_resend_wait(redis_client, db)
    refused = _signup(client)
    assert refused.status_code == 429
    assert "Voor dit nummer zijn vandaag te veel codes gevraagd." in _page(refused)
    assert len(sms.received(E164)) == 5


def test_without_redis_no_code_is_promised_and_nothing_is_stored(
        settings: Settings, engine, sessions: sessionmaker[Session], db: Session) -> None:
    seed_demo(sessions, size=0)
    unreachable = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2)
    client = create_app(runtime=Runtime(settings, engine, sessions, unreachable)).test_client()
    response = _signup(client)
    assert response.status_code == 503
    assert "Wij kunnen nu geen sms versturen." in _page(response)
    assert f'value="{PHONE}"' in _page(response)
    assert _participant(db) is None


def test_codes_are_limited_per_connection(client: FlaskClient, sms: Sms) -> None:
    for n in range(10):
        assert _post(client, "/deelnemen/inloggen", {"phone": f"06 1234560{n}"}) \
            .status_code == 302
    refused = _post(client, "/deelnemen/inloggen", {"phone": "06 23456789"})
    assert refused.status_code == 429
    assert "Vanaf deze verbinding zijn te veel codes gevraagd." in _page(refused)


def test_codes_are_limited_per_ipv6_64_not_per_address(client: FlaskClient, sms: Sms) -> None:
    for n in range(10):
        response = _post(client, "/deelnemen/inloggen", {"phone": f"06 1234560{n}"},
                         environ_base={"REMOTE_ADDR": f"2001:db8:42:7:{n + 1:x}::9"})
        assert response.status_code == 302
    refused = _post(client, "/deelnemen/inloggen", {"phone": "06 23456789"},
                    environ_base={"REMOTE_ADDR": "2001:db8:42:7:abcd:ef01:2345:6789"})
    assert refused.status_code == 429
    assert "Vanaf deze verbinding zijn te veel codes gevraagd." in _page(refused)


def test_when_the_hour_s_code_budget_is_spent_nobody_gets_a_code_and_nothing_is_stored(
        settings: Settings, engine, sessions: sessionmaker[Session], db: Session,
        redis_client: redis.Redis, sms: Sms, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("web.portal.now", lambda: datetime(2026, 11, 23, 12, 5, tzinfo=UTC))
    seed_demo(sessions, size=0)
    app = create_app(runtime=Runtime(replace(settings, code_sms_per_hour=2), engine, sessions,
                                     redis_client))
    def client_at(address: str) -> FlaskClient:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        return client

    for n, phone in enumerate((PHONE, OTHER)):
        assert _signup(client_at(f"198.51.100.{n}"), phone).status_code == 302
    late = [client_at(f"203.0.113.{n}") for n in range(3)]
    refused = _signup(late[0], "06 11112222")
    assert refused.status_code == 503
    assert ("Er worden nu uitzonderlijk veel codes gevraagd, daarom sturen wij even geen sms."
            in _page(refused))
    assert _post(late[1], "/deelnemen/inloggen", {"phone": "06 55556666"}).status_code == 503
    english = _signup(late[2], "06 33334444", query="?lang=en")
    assert english.status_code == 503
    assert "An unusually large number of codes is being asked for" in _page(english)
    assert _participant(db, "+31611112222") is None and _participant(db, "+31633334444") is None
    assert len(sms.received(E164)) == 1 and len(sms.received(OTHER_E164)) == 1
    [event] = db.scalars(select(AuditEvent).where(AuditEvent.verb == "code_budget_spent")).all()
    assert event.actor == "system" and event.details == {"budget": 2, "purpose": "signup"}
    alarms = [r for r in caplog.records if r.name == "burgernet.codes"]
    assert [r.levelname for r in alarms] == ["ERROR"] and "13:00 UTC" in alarms[0].message


# --- 3. logging in later ---------------------------------------------------------------

def test_logging_in_answers_alike_for_registered_and_unknown_numbers(
        app: Flask, sms: Sms, db: Session, redis_client: redis.Redis) -> None:
    _join(app.test_client(), sms)
    _forget_resend_wait(redis_client, db)
    known, unknown = app.test_client(), app.test_client()
    answers = [_post(c, "/deelnemen/inloggen", {"phone": p})
               for c, p in ((known, PHONE), (unknown, OTHER))]
    assert [a.status_code for a in answers] == [302, 302]
    assert {a.headers["Location"] for a in answers} == {"/deelnemen/code"}
    pages = [_page(c.get("/deelnemen/code")) for c in (known, unknown)]
    assert _same(pages[0], "06 12345678") == _same(pages[1], "06 87654321")
    assert "Als 06 12345678 bij Burgernet is aangemeld, krijgt u een sms" in pages[0]
    assert sms.received(OTHER_E164) == [] and _participant(db, OTHER_E164) is None
    wrong = [_page(_enter(c, "000001")) for c in (known, unknown)]
    assert "U kunt het nog 4 keer proberen." in wrong[0] and "nog 4 keer" in wrong[1]
    again = [_post(c, "/deelnemen/inloggen", {"phone": p})
             for c, p in ((known, PHONE), (unknown, OTHER))]
    assert [a.status_code for a in again] == [429, 429]
    assert _same(_page(again[0]), PHONE) == _same(_page(again[1]), OTHER)


def _timed_post(client: FlaskClient, path: str, data: dict[str, str],
                form_page: str | None = None) -> float:
    """Seconds the POST took (the CSRF token fetched before the clock starts)."""
    token = csrf_token(client, form_page or path)
    started = time.monotonic()
    client.post(path, data={**data, "csrf_token": token})
    return time.monotonic() - started


def test_the_answers_take_no_less_time_for_unknown_numbers(
        app: Flask, sms: Sms, db: Session, redis_client: redis.Redis) -> None:
    """Alike in time too: what a known number causes (a code written and queued, a wrong
    code counted in its row) happens within a fixed time, so the delay tells nothing."""
    _join(app.test_client(), sms)
    _forget_resend_wait(redis_client, db)
    known, unknown = app.test_client(), app.test_client()
    asked = [_timed_post(c, "/deelnemen/inloggen", {"phone": p})
             for c, p in ((known, PHONE), (unknown, OTHER))]
    checked = [_timed_post(c, "/deelnemen/code", {"code": "000001"})
               for c in (known, unknown)]
    signed_up = [_timed_post(app.test_client(), "/deelnemen/aanmelden",
                             {"phone": phone, "postcode": "3511", "language": "nl",
                              "consent": "y"}) for phone in ("06 11223344", "06 55667788")]
    assert min(asked + checked + signed_up) >= steady.ANSWER_SECONDS
    assert _participant(db, "+31611223344") is not None  # the sign-ups went through


def test_logging_in_with_the_code_opens_the_page_and_a_stopped_participant_stays_stopped(
        app: Flask, sms: Sms, db: Session, redis_client: redis.Redis) -> None:
    first = app.test_client()
    _join(first, sms)
    _post(first, "/deelnemen/mijn/afmelden", form_page="/deelnemen/mijn")
    _forget_resend_wait(redis_client, db)
    later = app.test_client()
    _post(later, "/deelnemen/inloggen", {"phone": "0612345678"})
    response = _enter(later, sms.code())
    assert response.headers["Location"] == "/deelnemen/mijn"
    page = _page(later.get("/deelnemen/mijn"))
    assert "U bent ingelogd." in page and 'id="resubscribe"' in page
    participant = _participant(db)
    assert participant.status == ParticipantStatus.STOPPED
    assert db.scalar(select(AuditEvent.actor).where(AuditEvent.verb == "log_in")) == \
        f"participant:{participant.id}"


# --- sessions ---------------------------------------------------------------------------

def test_the_own_page_needs_a_login_and_an_idle_session_expires(
        client: FlaskClient, sms: Sms) -> None:
    assert client.get("/deelnemen/mijn").headers["Location"] == "/deelnemen/inloggen"
    assert client.post("/deelnemen/mijn/apparaten", json={}).status_code == 400  # no CSRF
    anonymous = _add_device(client, {"subscription": _subscription()}, csrf_token(
        client, "/deelnemen/inloggen"))
    assert anonymous.status_code == 401 and anonymous.get_json()["error"] == "Log eerst in."
    _join(client, sms)
    with client.session_transaction() as session:
        session["participant_seen"] -= 31 * 60
    response = client.get("/deelnemen/mijn")
    assert response.headers["Location"] == "/deelnemen/inloggen"
    assert "Uw sessie is verlopen; log opnieuw in." in _page(client.get("/deelnemen/inloggen"))
    with client.session_transaction() as session:
        assert "participant_id" not in session


def test_logging_out_clears_the_session(client: FlaskClient, sms: Sms, db: Session) -> None:
    _join(client, sms)
    with client.session_transaction() as session:
        session["lang"] = "en"
    response = _post(client, "/deelnemen/uitloggen", form_page="/deelnemen/mijn")
    assert response.headers["Location"] == "/deelnemen/"
    with client.session_transaction() as session:
        assert set(session) <= {"lang", "_flashes"} and session["lang"] == "en"
    assert client.get("/deelnemen/mijn").status_code == 302
    assert db.scalar(select(AuditEvent.verb).where(AuditEvent.verb == "log_out")) == "log_out"


def test_a_session_cookie_signed_with_another_key_logs_nobody_in(
        app: Flask, client: FlaskClient, sms: Sms, db: Session) -> None:
    _join(app.test_client(), sms)
    forger = Flask("forger")
    forger.secret_key = "not-the-secret"
    serializer = app.session_interface.get_signing_serializer(forger)
    now = int(datetime.now(UTC).timestamp())
    forged = serializer.dumps({"participant_id": _participant(db).id,
                               "participant_since": now, "participant_seen": now})
    client.set_cookie("session", forged)
    assert client.get("/deelnemen/mijn").headers["Location"] == "/deelnemen/inloggen"


# --- 4. my page ---------------------------------------------------------------------------

def _preferences(client: FlaskClient, **fields: object):
    data: dict[str, object] = {"prefs-channels": ["sms"], "prefs-email": "",
                               "prefs-language": "nl"}
    data.update({f"prefs-{k}": v for k, v in fields.items()})
    token = csrf_token(client, "/deelnemen/mijn")
    return client.post("/deelnemen/mijn/voorkeuren", data={**data, "prefs-csrf_token": token})


def test_channels_e_mail_language_and_quiet_hours_are_saved_and_audited(
        client: FlaskClient, sms: Sms, db: Session) -> None:
    _join(client, sms)
    page = _page(client.get("/deelnemen/mijn"))
    assert str(escape(QUIET_HOURS_RULE["nl"])) in page and 'id="quiet-rule"' in page
    response = _preferences(client, channels=["sms", "email", "voice"],
                            email="Me@Example.org", language="en",
                            quiet_sms_from="22:00", quiet_sms_to="07:00",
                            quiet_email_from="23:30", quiet_email_to="06:15")
    assert response.headers["Location"] == "/deelnemen/mijn"
    participant = _participant(db)
    assert {c for c in Channel if participant.has_channel(c)} == \
        {Channel.SMS, Channel.EMAIL, Channel.VOICE}
    assert participant.email == "Me@Example.org" and participant.language == "en"
    assert participant.quiet_hours == {"sms": ["22:00", "07:00"], "email": ["23:30", "06:15"]}
    event = db.scalar(select(AuditEvent).where(AuditEvent.verb == "set_preferences"))
    assert event.actor == f"participant:{participant.id}"
    assert set(event.details["changed"]) == {"channels", "email", "language", "quiet_hours"}
    assert "Example.org" not in str(event.details) and "612345678" not in str(event.details)
    page = _page(client.get("/deelnemen/mijn?lang=en"))
    assert "Your preferences have been saved." in page
    assert str(escape(QUIET_HOURS_RULE["en"])) in page
    assert 'value="22:00"' in page and 'value="Me@Example.org"' in page


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"channels": ["sms", "email"]}, "prefs-email",
     "Voor berichten per e-mail hebben wij uw e-mailadres nodig."),
    ({"channels": ["sms"], "email": "not-an-address"}, "prefs-email",
     "Vul een geldig e-mailadres in, zoals naam@voorbeeld.nl."),
    ({"channels": []}, "prefs-channels", "Kies minstens één manier."),
    ({"channels": ["sms", "fax"]}, "prefs-channels", "Kies een van de mogelijkheden."),
    ({"language": "de"}, "prefs-language", "Kies een van de mogelijkheden."),
    ({"quiet_sms_from": "25:00", "quiet_sms_to": "07:00"}, "prefs-quiet_sms_from",
     "Gebruik uu:mm, bijvoorbeeld 22:00."),
    ({"quiet_sms_from": "laat", "quiet_sms_to": "07:00"}, "prefs-quiet_sms_from",
     "Gebruik uu:mm, bijvoorbeeld 22:00."),
    ({"quiet_voice_from": "22:00"}, "prefs-quiet_voice_to",
     "Vul ook het einde in, of laat beide leeg."),
    ({"quiet_push_to": "07:00"}, "prefs-quiet_push_from",
     "Vul ook het begin in, of laat beide leeg."),
    ({"quiet_sms_from": "22:00", "quiet_sms_to": "22:00"}, "prefs-quiet_sms_to",
     "Begin en einde mogen niet gelijk zijn."),
])
def test_bad_preferences_are_refused_and_nothing_changes(
        client: FlaskClient, sms: Sms, db: Session, fields: dict[str, object], field: str,
        message: str) -> None:
    _join(client, sms)
    response = _preferences(client, **fields)
    page = _page(response)
    assert response.status_code == 400
    assert re.search(rf'data-testid="error-{field}">{re.escape(message)}', page), page
    for name, value in fields.items():
        if name == "email" or name.startswith("quiet_"):
            assert f'value="{value}"' in page
    participant = _participant(db)
    assert participant.channels == Channel.SMS.bit and participant.email is None
    assert participant.quiet_hours == {} and participant.language == "nl"
    assert db.scalar(select(AuditEvent).where(AuditEvent.verb == "set_preferences")) is None


def _place(client: FlaskClient, kind: str, postcode: str, hours: str = "8"):
    token = csrf_token(client, "/deelnemen/mijn")
    return client.post("/deelnemen/mijn/plaatsen", data={
        "place-kind": kind, "place-postcode": postcode, "place-hours": hours,
        "place-csrf_token": token})


def test_work_and_current_places_are_added_listed_and_removed(
        client: FlaskClient, sms: Sms, db: Session) -> None:
    _join(client, sms)
    assert _place(client, "work", "1012 AB").status_code == 302
    before = datetime.now(UTC)
    assert _place(client, "current", "3521", hours="2").status_code == 302
    participant = _participant(db)
    places = {p.kind: p for p in participant.locations}
    assert places[LocationKind.WORK].pc4 == "1012" and places[LocationKind.WORK].expires_at \
        is None
    current = places[LocationKind.CURRENT]
    assert current.pc4 == "3521"
    assert timedelta(hours=2) - timedelta(minutes=1) < current.expires_at - before <= \
        timedelta(hours=2, minutes=1)
    page = _page(client.get("/deelnemen/mijn"))
    assert 'data-testid="place-work"' in page and "1012 Amsterdam" in page
    assert 'data-testid="place-current"' in page
    work = places[LocationKind.WORK]
    response = _post(client, f"/deelnemen/mijn/plaatsen/{work.id}/verwijderen",
                     form_page="/deelnemen/mijn")
    assert response.status_code == 302
    home = places[LocationKind.HOME]
    _post(client, f"/deelnemen/mijn/plaatsen/{home.id}/verwijderen", form_page="/deelnemen/mijn")
    assert "Uw woonadres kunt u wijzigen, maar niet verwijderen." in \
        _page(client.get("/deelnemen/mijn"))
    assert sorted(p.kind for p in _participant(db).locations) == ["current", "home"]
    verbs = db.scalars(select(AuditEvent.verb).where(AuditEvent.verb.like("%location"))).all()
    assert sorted(verbs) == ["add_location", "add_location", "remove_location"]


@pytest.mark.parametrize(("kind", "postcode", "hours", "field", "message"), [
    ("work", "8999", "8", "place-postcode", "Postcode 8999 bestaat niet."),
    ("work", "", "8", "place-postcode", "Vul uw postcode in."),
    ("work", "abcd", "8", "place-postcode", "Vul een postcode in zoals 3511 of 3511 AB."),
    ("holiday", "3511", "8", "place-kind", "Kies een van de mogelijkheden."),
    ("current", "3511", "48", "place-hours", "Kies een van de mogelijkheden."),
])
def test_a_bad_place_is_refused_in_dutch(client: FlaskClient, sms: Sms, db: Session,
                                         kind: str, postcode: str, hours: str, field: str,
                                         message: str) -> None:
    _join(client, sms)
    response = _place(client, kind, postcode, hours)
    assert response.status_code == 400
    assert re.search(rf'data-testid="error-{field}">{re.escape(message)}', _page(response))
    assert len(_participant(db).locations) == 1


def test_at_most_five_places(client: FlaskClient, sms: Sms, db: Session) -> None:
    _join(client, sms)
    for postcode in ("1012", "3512", "3521", "1000"):
        assert _place(client, "work", postcode).status_code == 302
    response = _place(client, "work", "1001")
    assert response.status_code == 400
    assert "U kunt hoogstens 5 plaatsen opgeven" in _page(response)
    assert _place(client, "home", "1001").status_code == 302  # a new home replaces the old


def _subscription(endpoint: str = "https://fcm.googleapis.com/fcm/send/abc123") -> dict:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {"endpoint": endpoint, "keys": {
        "p256dh": b64urlencode(key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)),
        "auth": b64urlencode(b"0123456789abcdef")}}


def _add_device(client: FlaskClient, body: object, token: str | None = None):
    headers = {"X-CSRFToken": token or csrf_token(client, "/deelnemen/mijn")}
    return client.post("/deelnemen/mijn/apparaten", json=body, headers=headers)


def test_a_browser_s_push_subscription_is_stored_through_a_csrf_checked_call(
        client: FlaskClient, sms: Sms, db: Session, settings: Settings) -> None:
    _join(client, sms)
    body = {"subscription": _subscription(), "label": "Firefox op Android"}
    assert client.post("/deelnemen/mijn/apparaten", json=body).status_code == 400
    response = _add_device(client, body)
    assert response.status_code == 200
    assert response.get_json() == {"ok": True,
                                   "message": "Dit apparaat ontvangt nu app-meldingen."}
    participant = _participant(db)
    [device] = db.scalars(select(PushSubscription)).all()
    assert device.participant_id == participant.id and device.label == "Firefox op Android"
    assert participant.has_channel(Channel.PUSH)
    page = _page(client.get("/deelnemen/mijn"))
    assert f'id="device-{device.id}"' in page and "Firefox op Android" in page
    bad = _add_device(client, {"subscription": {"endpoint": "http://evil.example/x",
                                                "keys": {"p256dh": "x", "auth": "y"}}})
    assert bad.status_code == 400 and bad.get_json()["error"] == \
        "Dit apparaat kon niet worden aangemeld voor app-meldingen."
    assert _add_device(client, "not an object").status_code == 400
    response = _post(client, f"/deelnemen/mijn/apparaten/{device.id}/verwijderen",
                     form_page="/deelnemen/mijn")
    assert response.status_code == 302
    assert db.scalar(select(func.count()).select_from(PushSubscription)) == 0
    verbs = db.scalars(select(AuditEvent.verb).where(AuditEvent.verb.like("%push%"))).all()
    assert sorted(verbs) == ["add_push_subscription", "remove_push_subscription"]


@pytest.mark.parametrize("endpoint", [
    "http://127.0.0.1:8710/push/a",  # this server's own machine (PUBLIC_URL is loopback here)
    "https://127.0.0.1/push/a", "https://[::1]/push/a", "https://10.1.2.3/push/a",
    "https://169.254.169.254/latest/meta-data", "https://localhost/push/a",
    "https://push.example.net/send/a", "https://fcm.googleapis.com.evil.example/send/a"])
def test_a_push_endpoint_off_the_browsers_push_services_is_refused(
        client: FlaskClient, sms: Sms, db: Session, endpoint: str) -> None:
    _join(client, sms)
    response = _add_device(client, {"subscription": _subscription(endpoint)})
    assert response.status_code == 400 and response.get_json()["error"] == \
        "Dit apparaat kon niet worden aangemeld voor app-meldingen."
    assert db.scalar(select(func.count()).select_from(PushSubscription)) == 0


def test_the_push_button_carries_the_vapid_key_when_the_server_has_one(
        app: Flask, client: FlaskClient, sms: Sms) -> None:
    _join(client, sms)
    assert 'id="push-unavailable"' in _page(client.get("/deelnemen/mijn"))
    from outbound.providers.webpush import generate_vapid_key

    public = generate_vapid_key(app.extensions["runtime"].settings.vapid_private_key)
    page = _page(client.get("/deelnemen/mijn"))
    assert f'data-vapid-key="{public}"' in page and 'id="push-enable"' in page
    assert 'data-worker-url="/deelnemen/sw.js"' in page and 'data-scope="/deelnemen/"' in page
    assert '<meta name="csrf-token"' in page


def test_the_service_worker_is_served_with_the_portal_as_its_scope(client: FlaskClient) -> None:
    response = client.get("/deelnemen/sw.js")
    assert response.status_code == 200
    assert response.headers["Service-Worker-Allowed"] == "/deelnemen/"
    assert response.mimetype == "text/javascript"
    assert "showNotification" in response.get_data(as_text=True)


# --- 5. unsubscribing ----------------------------------------------------------------------

def test_unsubscribing_stops_the_messages_keeps_the_data_and_can_be_undone(
        client: FlaskClient, sms: Sms, db: Session) -> None:
    _join(client, sms)
    _post(client, "/deelnemen/mijn/afmelden", form_page="/deelnemen/mijn")
    participant = _participant(db)
    assert participant.status == ParticipantStatus.STOPPED and participant.stopped_at
    assert participant.locations
    page = _page(client.get("/deelnemen/mijn"))
    assert "U bent afgemeld en ontvangt geen berichten meer." in page
    assert 'id="resubscribe"' in page
    _post(client, "/deelnemen/mijn/hervatten", form_page="/deelnemen/mijn")
    assert _participant(db).status == ParticipantStatus.VERIFIED
    verbs = db.scalars(select(AuditEvent.actor + ":" + AuditEvent.verb)
                       .where(AuditEvent.verb.in_(["stop", "start"]))
                       .order_by(AuditEvent.id)).all()
    assert verbs == [f"participant:{participant.id}:stop", f"participant:{participant.id}:start"]


# --- 6. deleting ----------------------------------------------------------------------------

#: The participant's number as people and systems write it inside texts.
WRITTEN = ("+31612345678", "06-12345678", "0612345678", "+31 6 1234 5678", "06 123 456 78",
           "0031 6 12345678", "sip:31612345678@trunk.example")
#: What of those would show in a column, were any left.
NEEDLES = ("612345678", "12345678", "1234 5678", "123 456 78", "6 1234", "deelnemer@example")


def _traces(db: Session, participant: Participant) -> None:
    """What a participant leaves behind: an e-mail address, a device, messages (one with an
    inquiry reaction that gave the address), calls either way with their number in the
    routing reason, their tips with their number and address in the text, and a tip and a
    call of someone else that mention their number."""
    participant.email = "deelnemer@example.org"
    meldkamer = db.scalar(select(Meldkamer).where(Meldkamer.code == "MN"))
    organisation = db.scalar(select(Organisation).limit(1))
    action = Action(kind=ActionKind.NEIGHBOURHOOD_INQUIRY, urgency=Urgency.NORMAL,
                    title_nl="Inbraak", meldkamer=meldkamer, organisation=organisation)
    db.add(action)
    db.flush()
    sms_delivery = Delivery(action_id=action.id, participant_id=participant.id,
                            channel=Channel.SMS)
    mail = Delivery(action_id=action.id, participant_id=participant.id, channel=Channel.EMAIL)
    db.add_all([sms_delivery, mail, PushSubscription(
        participant_id=participant.id, endpoint="https://push.example.net/x", p256dh="k",
        auth="a")])
    db.flush()
    db.add_all([
        InquiryReaction(action_id=action.id, delivery_id=mail.id, text="Ik zag iets",
                        contact="deelnemer@example.org"),
        CallRecord(direction=CallDirection.INBOUND, transport="twilio", caller=E164,
                   called="0800-0011", participant_id=participant.id),
        CallRecord(direction=CallDirection.OUTBOUND, transport="sip", caller=E164,
                   called="sip:31612345678@trunk.example", participant_id=participant.id),
        CallRecord(direction=CallDirection.INBOUND, transport="twilio", caller="0612345678",
                   called="0800-0011"),
        CallRecord(direction=CallDirection.INBOUND, transport="sip", caller=E164,
                   participant_id=participant.id, meldkamer_id=meldkamer.id,
                   outcome="connected", routing_reason=(
                       f"postcode: keyed postcode 3511 lies in Utrecht; keys {WRITTEN[3]} "
                       f"during the greeting not used; postcode '{WRITTEN[2]}#' has 10 digits")),
        CallRecord(direction=CallDirection.INBOUND, transport="sip", caller=OTHER_E164,
                   meldkamer_id=meldkamer.id, outcome="connected", routing_reason=(
                       f"national_fallback: caller id '{WRITTEN[6]};x' is not a phone number; "
                       f"keyed input ignored: postcode '{WRITTEN[4]}' has 9 digits, not 4")),
        Tip(action_id=action.id, participant_id=participant.id, source="sms",
            text=f"Rode auto, kenteken 12-ABC-3. Bel me op {WRITTEN[1]} of {WRITTEN[3]}."),
        Tip(action_id=action.id, participant_id=participant.id, source="mms",
            text=f"Foto. Mail: deelnemer@example.org, of {WRITTEN[5]}; buurman {OTHER_E164}"),
        Tip(action_id=action.id, source="sms", text=f"Mijn buurvrouw ({WRITTEN[0]}) zag het ook"),
    ])
    db.commit()


def _rows_containing(db: Session, needle: str) -> list[str]:
    """Every table and column whose text holds NEEDLE (strings and JSON alike)."""
    found = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, Enum):
                continue
            if isinstance(column.type, String | Text):
                value = column
            elif isinstance(column.type, JSON):
                value = cast(column, Text)
            else:
                continue
            hits = db.scalar(select(func.count()).select_from(table)
                             .where(value.contains(needle, autoescape=True)))
            if hits:
                found.append(f"{table.name}.{column.name}")
    return found


def test_delete_my_data_asks_first_then_leaves_no_phone_number_or_address_anywhere(
        client: FlaskClient, sms: Sms, db: Session) -> None:
    _join(client, sms)
    _place(client, "work", "1012")
    participant = _participant(db)
    participant_id = participant.id
    _traces(db, participant)
    assert all(_rows_containing(db, needle) for needle in NEEDLES)
    page = _page(client.get("/deelnemen/mijn/verwijderen"))
    assert 'id="confirm"' in page and 'id="delete-submit"' in page
    assert "Wat blijft: de tekst van tips die u gaf" in page
    refused = _post(client, "/deelnemen/mijn/verwijderen")
    assert refused.status_code == 400
    assert "Vink aan dat u uw gegevens echt wilt verwijderen." in _page(refused)
    assert _participant(db) is not None
    response = _post(client, "/deelnemen/mijn/verwijderen", {"confirm": "y"})
    assert response.headers["Location"] == "/deelnemen/"
    assert "Uw gegevens zijn verwijderd." in _page(client.get("/deelnemen/"))
    with client.session_transaction() as session:
        assert "participant_id" not in session
    db.expire_all()
    assert _participant(db) is None
    for needle in NEEDLES:
        assert _rows_containing(db, needle) == [], needle
    for model in (ParticipantLocation, PushSubscription, Delivery, InquiryReaction):
        assert db.scalar(select(func.count()).select_from(model)) == 0, model
    calls = db.scalars(select(CallRecord).order_by(CallRecord.id)).all()
    assert len(calls) == 5 and all(c.participant_id is None for c in calls)
    assert [c.caller for c in calls] == [None, None, None, None, OTHER_E164]
    assert [(c.outcome, c.meldkamer_id is not None) for c in calls[3:]] == [("connected", True)] * 2
    assert calls[3].routing_reason == (
        "postcode: keyed postcode 3511 lies in Utrecht; keys [nummer verwijderd] during the "
        "greeting not used; postcode '[nummer verwijderd]#' has 10 digits")
    assert calls[4].routing_reason.startswith(
        "national_fallback: caller id 'sip:[nummer verwijderd]@trunk.example;x' is not")
    tips = db.scalars(select(Tip).order_by(Tip.id)).all()
    assert all(t.participant_id is None for t in tips)
    assert [t.text for t in tips] == [
        "Rode auto, kenteken 12-ABC-3. Bel me op [nummer verwijderd] of [nummer verwijderd].",
        f"Foto. Mail: ***, of [nummer verwijderd]; buurman {OTHER_E164}",
        "Mijn buurvrouw ([nummer verwijderd]) zag het ook"]
    event = db.scalar(select(AuditEvent).where(AuditEvent.verb == "delete"))
    assert (event.actor, event.object_id) == (f"participant:{participant_id}",
                                              str(participant_id))
    assert client.get("/deelnemen/mijn").status_code == 302


# --- isolation and the rest ------------------------------------------------------------------

def test_one_participant_cannot_touch_another_s_places_or_devices(
        app: Flask, sms: Sms, db: Session) -> None:
    alice, bob = app.test_client(), app.test_client()
    _join(alice, sms)
    _join(bob, sms, OTHER, OTHER_E164)
    _place(bob, "work", "1012")
    assert _add_device(bob, {"subscription": _subscription()}).status_code == 200
    bobs = _participant(db, OTHER_E164)
    work = next(p for p in bobs.locations if p.kind == LocationKind.WORK)
    device = db.scalar(select(PushSubscription))
    for path in (f"/deelnemen/mijn/plaatsen/{work.id}/verwijderen",
                 f"/deelnemen/mijn/apparaten/{device.id}/verwijderen"):
        assert _post(alice, path, form_page="/deelnemen/mijn").status_code == 404
    _preferences(alice, channels=["voice"], language="en")
    _post(alice, "/deelnemen/mijn/afmelden", form_page="/deelnemen/mijn")
    bobs = _participant(db, OTHER_E164)
    assert len(bobs.locations) == 2 and db.scalar(select(PushSubscription)) is not None
    assert bobs.language == "nl" and bobs.status == ParticipantStatus.VERIFIED
    assert bobs.has_channel(Channel.PUSH) and not bobs.has_channel(Channel.VOICE)
    assert "06 87654321" not in _page(alice.get("/deelnemen/mijn"))


def test_no_participant_audit_event_names_a_phone_number(client: FlaskClient, sms: Sms,
                                                         db: Session) -> None:
    _join(client, sms)
    _preferences(client, channels=["sms", "email"], email="a@example.org")
    _place(client, "current", "3511", "1")
    _post(client, "/deelnemen/uitloggen", form_page="/deelnemen/mijn")
    participant_id = _participant(db).id
    events = db.scalars(select(AuditEvent).where(AuditEvent.object_type == "participant",
                                                 AuditEvent.object_id == str(participant_id))
                        ).all()
    assert {e.verb for e in events} == {"register", "verify", "set_preferences",
                                        "add_location", "log_out"}
    text = " ".join(f"{e.actor} {e.object_id} {e.details}" for e in events)
    assert "612345678" not in text and "a@example.org" not in text
    assert all(e.actor.startswith("participant:") for e in events)


def test_no_redis_key_names_a_number_or_address_and_every_limit_expires(
        app: Flask, client: FlaskClient, sms: Sms, redis_client: redis.Redis) -> None:
    _signup(client)
    _enter(client, _wrong(sms.code()))
    _post(app.test_client(), "/deelnemen/inloggen", {"phone": OTHER})
    staff = app.test_client()
    staff.post("/login", data={"email": "Iemand@Example.org", "password": "raden",
                               "csrf_token": csrf_token(staff)})
    keys = [k.decode() for k in redis_client.scan_iter() if not k.startswith(b"rq:")]
    assert {k.split(":")[0] for k in keys} >= {"portal-code", "login-fail"}
    for key in keys:
        assert redis_client.pttl(key) != -1, key  # -1: no expiry (-2: expired meanwhile)
        stored = key + repr(redis_client.dump(key))
        for secret in ("612345678", "687654321", "iemand@example.org", "Iemand@Example"):
            assert secret not in stored, key


def test_the_start_page_leads_to_sign_up_and_log_in(client: FlaskClient) -> None:
    page = _page(client.get("/deelnemen/"))
    assert 'id="signup-link"' in page and 'id="login-link"' in page
    assert "Take part in Burgernet" in _page(client.get("/deelnemen/?lang=en"))


def test_every_portal_text_has_an_english_translation() -> None:
    texts = set()
    for template in TEMPLATES.glob("*.html"):
        texts |= {t.replace("\\'", "'") for t in
                  re.findall(r"_\('((?:[^'\\]|\\.)*)'", template.read_text())}
    sources = Path(__file__).parents[2] / "web"
    for module in sources.glob("portal*.py"):
        for call in re.findall(r'(?:translate|flash)\(\s*((?:"[^"]*"\s*)+)', module.read_text()):
            texts.add("".join(re.findall(r'"([^"]*)"', call)))
    texts |= set(portal.REFUSALS.values()) | {portal.NO_SMS, portal.USED_UP}
    texts |= set(portal_forms.CHANNEL_LABELS.values()) | set(portal_account.KIND_LABELS.values())
    for form in (portal_forms.SignupForm, portal_forms.LoginForm, portal_forms.CodeForm,
                 portal_forms.PreferencesForm, portal_forms.PlaceForm, portal_forms.DeleteForm):
        texts |= _form_texts(form)
    missing = sorted(t for t in texts if t not in ENGLISH)
    assert not missing, missing


def _form_texts(form: type) -> set[str]:
    """The labels, choices and check messages a form class declares."""
    texts = set()
    for name in dir(form):
        field = getattr(form, name)
        if not isinstance(field, UnboundField):
            continue
        texts.add(field.args[0])
        for validator in field.kwargs.get("validators", []):
            if isinstance(getattr(validator, "message", None), str):
                texts.add(validator.message)
        texts |= {c.label for c in field.kwargs.get("choices", []) if not c.label.isdigit()}
        if field.kwargs.get("invalid_choice_message"):
            texts.add(field.kwargs["invalid_choice_message"])
    return texts
