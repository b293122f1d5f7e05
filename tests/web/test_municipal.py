"""Neighbourhood inquiries and municipality messages in the web UI, with e-mail over a real
SMTP server (aiosmtpd) and the real RQ worker on a real Redis."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from flask.testing import FlaskClient
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.models import (
    Action,
    ActionKind,
    ActionStatus,
    AuditEvent,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    InquiryReaction,
    Language,
    LocationKind,
    Meldkamer,
    Organisation,
    Participant,
    ParticipantLocation,
    ParticipantStatus,
    User,
    channel_mask,
)
from core.permissions import SCOPES, Actor, actor_for_organisation
from core.settings import Settings
from fakes.smtp import Inbox, SmtpServer
from outbound.actions import ActionDraft, create_action
from outbound.providers.console import ConsoleProvider
from outbound.providers.smtp import SmtpProvider
from outbound.queues import queue_names
from outbound.runtime import Runtime
from outbound.worker import BatchWorker
from tests.web.helpers import csrf_token, login_as

#: A quiet spot in Utrecht (the test database has no demo population).
CENTRE = (52.0907, 5.1214)
_numbers = iter(range(2_000, 9_999_999))


def participant(db: Session, *, channels=(Channel.EMAIL,), language=Language.NL,
                quiet_hours=None, where=CENTRE, email: str | None = "auto") -> Participant:
    """A verified participant living at WHERE (registration is tested elsewhere)."""
    number = next(_numbers)
    person = Participant(phone=f"+3169{number:07d}", status=ParticipantStatus.VERIFIED,
                         channels=channel_mask(set(channels)), language=language,
                         quiet_hours=quiet_hours or {},
                         email=f"buur{number}@example.org" if email == "auto" else email)
    person.locations.append(ParticipantLocation(kind=LocationKind.HOME, lat=where[0],
                                                lon=where[1]))
    db.add(person)
    db.commit()
    return person


def quiet_now() -> list[str]:
    """A window of quiet hours around this moment."""
    local = datetime.now(ZoneInfo("Europe/Amsterdam"))
    return [(local - timedelta(hours=1)).strftime("%H:%M"),
            (local + timedelta(hours=2)).strftime("%H:%M")]


def unrestricted(organisation: Organisation) -> Actor:
    """Someone who may make anything for ORGANISATION: how a row from before the permission
    rules, or an administrator's, comes about."""
    return Actor(organisation.id, organisation.kind, frozenset(SCOPES), any_meldkamer=True,
                 unrestricted=True, name="test")


def form_data(client: FlaskClient, path: str, **values: str) -> dict[str, str]:
    data = {"csrf_token": csrf_token(client, path), "title_nl": "Inbraak Biltstraat",
            "text_nl": "Wie zag gisteravond tussen 22 en 23 uur iemand bij nummer 12?",
            "lat": str(CENTRE[0]), "lon": str(CENTRE[1]), "radius_m": "800", "polygon": ""}
    data.update(values)
    return data


def create(client: FlaskClient, slug: str = "buurtonderzoek", **values: str) -> int:
    """Write a draft through the form (SLUG: buurtonderzoek or bericht); its id."""
    path = f"/gemeente/{slug}/nieuw"
    response = client.post(path, data=form_data(client, path, **values))
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def _body(email) -> str:
    return email.get_payload(decode=True).decode()


def post(client: FlaskClient, path: str, page: str, **data: str):
    return client.post(path, data={"csrf_token": csrf_token(client, page), **data})


@pytest.fixture
def officer(client: FlaskClient) -> FlaskClient:
    return login_as(client, "municipality_officer")


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    with SmtpServer() as server:
        yield server.inbox, server.port


@pytest.fixture
def worker(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
           redis_client: redis.Redis, smtp_server, tmp_path):
    """The outbound worker in this process: e-mail over SMTP to the aiosmtpd server, push to
    the console provider; run() drains the queues."""
    _inbox, port = smtp_server
    console = ConsoleProvider(tmp_path / "console.jsonl")
    runtime = Runtime(replace(settings, email_rate=0.0, push_rate=0.0), engine, sessions,
                      redis_client, providers={
                          Channel.EMAIL: lambda: SmtpProvider(
                              "127.0.0.1", port, "burgernet@example.org"),
                          Channel.PUSH: lambda: console})

    def run() -> None:
        queues = [Queue(n, connection=redis_client, serializer=JSONSerializer)
                  for n in queue_names()]
        BatchWorker(queues, connection=redis_client, serializer=JSONSerializer,
                    runtime=runtime).work(burst=True)

    yield run
    runtime.close()


def test_the_menu_entry_lists_the_organisations_inquiries_and_messages(
        officer: FlaskClient, db: Session) -> None:
    mine = create(officer, title_nl="Fietsendiefstal station")
    police = db.scalar(select(Organisation).where(Organisation.name == "Politie Midden-Nederland"))
    theirs = create_action(db, ActionDraft(kind="neighbourhood_inquiry", title_nl="Van de politie",
                                           meldkamer_code="MN", lat=CENTRE[0], lon=CENTRE[1],
                                           radius_m=500), actor_for_organisation(police))
    db.commit()
    home = officer.get("/").get_data(as_text=True)
    assert 'href="/gemeente/"' in home and "Buurtonderzoek en berichten" in home
    page = officer.get("/gemeente/").get_data(as_text=True)
    assert f'id="municipal-row-{mine}"' in page and "Fietsendiefstal station" in page
    assert f'id="municipal-row-{theirs.id}"' not in page
    assert 'id="new-inquiry"' in page and 'id="new-message"' in page


def test_an_officer_writes_previews_and_sends_an_inquiry_by_email_only(
        officer: FlaskClient, db: Session, redis_client: redis.Redis, write_outboxes) -> None:
    readers = [participant(db, channels=(Channel.EMAIL, Channel.SMS)) for _ in range(3)]
    participant(db, channels=(Channel.SMS, Channel.VOICE))  # no e-mail: not asked
    participant(db, where=(52.2, 5.3))  # outside the area
    action_id = create(officer)
    action = db.get(Action, action_id)
    assert action.kind == ActionKind.NEIGHBOURHOOD_INQUIRY and action.status == ActionStatus.DRAFT
    assert action.meldkamer.code == "MN"  # Utrecht's safety region is run from Midden-Nederland
    assert action.organisation.name == "Gemeente Utrecht"
    assert action.description_nl.startswith("Wie zag gisteravond")
    page = officer.get(f"/gemeente/{action_id}").get_data(as_text=True)
    assert 'id="preview-recipients" data-count="3"' in page
    assert 'id="preview-channel-email" data-count="3"' in page and "preview-channel-sms" not in page
    assert "Burgernet-buurtonderzoek: Inbraak Biltstraat" in page
    response = post(officer, f"/gemeente/{action_id}/versturen", f"/gemeente/{action_id}")
    assert response.status_code == 302
    write_outboxes()
    deliveries = db.scalars(select(Delivery).where(Delivery.action_id == action_id)).all()
    assert Counter(d.channel for d in deliveries) == {Channel.EMAIL: 3}
    assert {d.participant_id for d in deliveries} == {p.id for p in readers}
    assert Queue("email-normal", connection=redis_client, serializer=JSONSerializer).count == 1
    db.refresh(action)
    assert action.status == ActionStatus.ACTIVE
    verbs = db.scalars(select(AuditEvent.verb).where(AuditEvent.object_type == "action",
                                                     AuditEvent.object_id == str(action_id))).all()
    assert set(verbs) >= {"create", "start"}
    again = post(officer, f"/gemeente/{action_id}/versturen", f"/gemeente/{action_id}")
    assert again.status_code == 302
    assert db.scalar(select(func.count(Delivery.id))
                     .where(Delivery.action_id == action_id)) == 3


@pytest.mark.parametrize(("values", "messages"), [
    ({"title_nl": "", "text_nl": ""}, ["Vul een titel in.", "Vul de vraag aan de buurt in."]),
    ({"lat": "abc"}, ["Geef een getal."]),
    ({"radius_m": "0"}, ["Geef een straal van meer dan 0 meter."]),
    ({"lat": "", "lon": ""}, ["Klik op de kaart voor het midden van het gebied"]),
    ({"polygon": '{"type": "Polygon", "coordinates": [[[5.1, 52.1]]]}'},
     ["Het getekende gebied is geen geldige veelhoek."]),
    ({"text_nl": "x" * 2001}, ["Te lang: hoogstens 2000 tekens."]),
])
def test_bad_input_is_named_in_dutch_and_what_was_typed_stays(
        officer: FlaskClient, db: Session, values: dict[str, str], messages: list[str]) -> None:
    before = db.scalar(select(func.count(Action.id)))
    path = "/gemeente/buurtonderzoek/nieuw"
    data = form_data(officer, path, title_en="Burglary", **values)
    response = officer.post(path, data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="form-errors"' in page
    for message in messages:
        assert message in page
    assert 'value="Burglary"' in page  # the optional English title is kept too
    if values.get("lat") == "abc":
        assert 'value="abc"' in page
    assert db.scalar(select(func.count(Action.id))) == before


def test_english_users_read_the_form_and_its_errors_in_english(officer: FlaskClient) -> None:
    officer.get("/gemeente/?lang=en")
    path = "/gemeente/buurtonderzoek/nieuw"
    page = officer.post(path, data=form_data(officer, path, text_nl="")).get_data(as_text=True)
    assert "New neighbourhood inquiry" in page
    assert "Please write the question to the neighbourhood." in page


def test_another_organisations_inquiry_and_any_search_action_are_not_found(
        officer: FlaskClient, db: Session) -> None:
    police = db.scalar(select(Organisation).where(Organisation.name == "Politie Midden-Nederland"))
    inquiry = create_action(db, ActionDraft(kind="neighbourhood_inquiry", title_nl="Elders",
                                            meldkamer_code="MN", lat=CENTRE[0], lon=CENTRE[1],
                                            radius_m=500), actor_for_organisation(police))
    utrecht = db.scalar(select(Organisation).where(Organisation.name == "Gemeente Utrecht"))
    search = create_action(db, ActionDraft(kind="suspect", title_nl="Zoekactie",
                                           meldkamer_code="MN", lat=CENTRE[0], lon=CENTRE[1],
                                           radius_m=500), unrestricted(utrecht))
    db.commit()
    own = create(officer)
    for action_id in (inquiry.id, search.id):
        assert officer.get(f"/gemeente/{action_id}").status_code == 404
        for verb in ("versturen", "sluiten", "vervolg", "verwijderen"):
            response = post(officer, f"/gemeente/{action_id}/{verb}", f"/gemeente/{own}")
            assert response.status_code == 404, verb
    db.refresh(inquiry)
    assert inquiry.status == ActionStatus.DRAFT


def test_municipality_officers_create_no_search_actions(officer: FlaskClient, db: Session) -> None:
    assert officer.get("/console/actions/new").status_code == 403
    path = "/gemeente/buurtonderzoek/nieuw"
    action_id = create(officer, kind="suspect", urgency="urgent")
    action = db.get(Action, action_id)
    assert action.kind == ActionKind.NEIGHBOURHOOD_INQUIRY and action.urgency.value == "normal"
    assert officer.get(path).status_code == 200


def test_a_new_draft_form_sent_twice_makes_one_draft(officer: FlaskClient, db: Session) -> None:
    path = "/gemeente/buurtonderzoek/nieuw"
    page = officer.get(path).get_data(as_text=True)
    submission = re.search(r'name="submission" value="([0-9a-f]{32})"', page).group(1)
    data = form_data(officer, path, submission=submission)
    before = db.scalar(select(func.count(Action.id)))
    first = officer.post(path, data=dict(data))
    again = officer.post(path, data=dict(data))
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == again.headers["Location"]
    assert db.scalar(select(func.count(Action.id))) == before + 1
    assert "er is geen tweede concept gemaakt" in officer.get(
        again.headers["Location"]).get_data(as_text=True)


def test_a_draft_can_be_changed_and_thrown_away(officer: FlaskClient, db: Session) -> None:
    first = create(officer)
    form = officer.get(f"/gemeente/{first}/wijzigen").get_data(as_text=True)
    assert 'value="Inbraak Biltstraat"' in form and 'value="800"' in form
    path = f"/gemeente/{first}/wijzigen"
    response = officer.post(path, data=form_data(officer, path, title_nl="Inbraak Biltstraat 12",
                                                 radius_m="1200"))
    assert response.status_code == 302
    second = int(response.headers["Location"].rsplit("/", 1)[1])
    assert db.get(Action, first) is None
    changed = db.get(Action, second)
    assert changed.title_nl == "Inbraak Biltstraat 12" and changed.radius_m == 1200
    response = post(officer, f"/gemeente/{second}/verwijderen", f"/gemeente/{second}")
    db.expire_all()
    assert response.status_code == 302 and db.get(Action, second) is None
    verbs = db.scalars(select(AuditEvent.verb).where(AuditEvent.object_type == "action",
                                                     AuditEvent.verb == "discard")).all()
    assert len(verbs) == 2


def test_an_admin_without_a_meldkamer_of_their_own_chooses_one(client: FlaskClient,
                                                               db: Session) -> None:
    login_as(client, "admin")
    path = "/gemeente/bericht/nieuw"
    assert 'name="meldkamer"' in client.get(path).get_data(as_text=True)
    refused = client.post(path, data=form_data(client, path, meldkamer="XX"))
    assert refused.status_code == 400
    assert "Kies een bestaande meldkamer." in refused.get_data(as_text=True)
    action_id = create(client, slug="bericht", meldkamer="RT")
    assert db.get(Action, action_id).meldkamer.code == "RT"


def test_a_centralist_sees_the_page_but_not_another_organisations_inquiries(
        client: FlaskClient, db: Session) -> None:
    login_as(client, "municipality_officer")
    inquiry = create(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/gemeente/")})
    login_as(client, "centralist")
    assert client.get("/gemeente/").status_code == 200
    assert client.get(f"/gemeente/{inquiry}").status_code == 404
    own = create(client, title_nl="Van de centralist")
    assert db.get(Action, own).meldkamer.code == "MN"


def test_a_preventive_message_goes_by_email_and_push_and_waits_for_quiet_hours(
        officer: FlaskClient, db: Session, worker, smtp_server) -> None:
    inbox, _port = smtp_server
    both = participant(db, channels=(Channel.EMAIL, Channel.PUSH, Channel.SMS))
    sleeper = participant(db, channels=(Channel.EMAIL,), quiet_hours={"email": quiet_now()})
    texter = participant(db, channels=(Channel.SMS, Channel.VOICE))
    action_id = create(officer, slug="bericht", title_nl="Let op: babbeltrucs",
                       text_nl="Oplichters bellen aan als meteropnemer. Vraag altijd een pasje.")
    page = officer.get(f"/gemeente/{action_id}").get_data(as_text=True)
    assert 'id="preview-recipients" data-count="2"' in page
    assert 'id="preview-channel-email" data-count="2"' in page
    assert 'id="preview-channel-push" data-count="1"' in page
    assert 'id="preview-held" data-count="1"' in page
    assert "Gezien? Bel gratis" not in page  # information, not a search
    post(officer, f"/gemeente/{action_id}/versturen", f"/gemeente/{action_id}")
    worker()  # writes the outbox, then sends what may go now
    db.expire_all()
    deliveries = {(d.participant_id, d.channel): d for d in db.scalars(
        select(Delivery).where(Delivery.action_id == action_id))}
    assert set(deliveries) == {(both.id, Channel.EMAIL), (both.id, Channel.PUSH),
                               (sleeper.id, Channel.EMAIL)}
    assert texter.id not in {pid for pid, _ in deliveries}
    held = deliveries[(sleeper.id, Channel.EMAIL)]
    assert held.next_attempt_at is not None and held.next_attempt_at > datetime.now(UTC)
    assert [e["To"] for _, e in inbox.messages] == [both.email]
    assert "Let op: babbeltrucs" in inbox.messages[0][1]["Subject"]
    assert db.get(Delivery, held.id).status == DeliveryStatus.QUEUED
    counts = officer.get(f"/gemeente/{action_id}").get_data(as_text=True)
    assert 'id="count-total" data-count="3"' in counts
    assert 'id="count-sent" data-count="2"' in counts
    assert "waarvan 1 tot na de stille uren" in counts
    stopped = post(officer, f"/gemeente/{action_id}/sluiten", f"/gemeente/{action_id}")
    assert stopped.status_code == 302
    db.expire_all()
    assert db.get(Delivery, held.id).status == DeliveryStatus.SKIPPED
    assert db.scalar(select(func.count(Delivery.id)).where(
        Delivery.action_id == action_id, Delivery.purpose != DeliveryPurpose.ALERT)) == 0


LINK = re.compile(r"http://[^\s]+/reactie/[A-Za-z0-9_\-.]+(?:\?lang=en)?")


def test_an_inquiry_end_to_end_over_smtp(officer: FlaskClient, app, db: Session, worker,
                                         smtp_server) -> None:
    """Create, preview, send; the worker mails each recipient their own link; one recipient
    opens it and reacts; the officer reads it, closes the inquiry and sends the update."""
    inbox, _port = smtp_server
    dutch = participant(db)
    english = participant(db, language=Language.EN)
    action_id = create(officer, title_en="Burglary Biltstraat",
                       text_en="Who saw anyone at number 12 last night between 10 and 11?")
    post(officer, f"/gemeente/{action_id}/versturen", f"/gemeente/{action_id}")
    worker()
    assert sorted(e["To"] for _, e in inbox.messages) == sorted([dutch.email, english.email])
    mails = {e["To"]: e for _, e in inbox.messages}
    dutch_mail, english_mail = mails[dutch.email], mails[english.email]
    assert dutch_mail["Subject"] == "Burgernet: buurtonderzoek - Inbraak Biltstraat"
    assert english_mail["Subject"] == "Burgernet: neighbourhood inquiry - Burglary Biltstraat"
    body = _body(dutch_mail)
    assert "Wie zag gisteravond" in body and "werkt 14 dagen" in body
    [link] = LINK.findall(body)
    [english_link] = LINK.findall(_body(english_mail))
    assert english_link.endswith("?lang=en") and english_link != link
    assert link.startswith(app.extensions["runtime"].settings.public_url + "/reactie/")

    reactor = app.test_client()  # the recipient: no login, another browser
    path = link.split("://", 1)[1].split("/", 1)[1]
    form = reactor.get("/" + path)
    assert form.status_code == 200
    assert "Wie zag gisteravond tussen 22 en 23 uur" in form.get_data(as_text=True)
    answer = reactor.post("/" + path, data={"csrf_token": csrf_token(reactor, "/" + path),
                                            "text": "Ik zag een man met een rode muts.",
                                            "contact": "06 12345678"})
    assert answer.status_code == 302
    assert "already" in reactor.get("/" + path).get_data(as_text=True) or \
        "al gereageerd" in reactor.get("/" + path).get_data(as_text=True)

    page = officer.get(f"/gemeente/{action_id}").get_data(as_text=True)
    assert "Ik zag een man met een rode muts." in page and "+31612345678" in page
    assert 'id="count-sent" data-count="2"' in page
    assert 'id="count-reacted" data-count="1"' in page

    closed = post(officer, f"/gemeente/{action_id}/sluiten", f"/gemeente/{action_id}")
    assert closed.status_code == 302
    english_path = "/" + english_link.split("://", 1)[1].split("/", 1)[1]
    late = reactor.get(english_path)
    assert late.status_code == 410 and "closed" in late.get_data(as_text=True)

    inbox.messages.clear()
    sent = post(officer, f"/gemeente/{action_id}/vervolg", f"/gemeente/{action_id}",
                update_nl="De verdachte is aangehouden. Bedankt voor uw hulp!",
                update_en="The suspect has been arrested. Thank you!")
    assert sent.status_code == 302
    worker()
    updates = {e["To"]: e for _, e in inbox.messages}
    assert set(updates) == {dutch.email, english.email}
    assert "De verdachte is aangehouden" in _body(updates[dutch.email])
    assert "The suspect has been arrested" in _body(updates[english.email])
    assert updates[dutch.email]["Subject"] == "Burgernet: vervolg - Inbraak Biltstraat"
    assert not LINK.search(_body(updates[dutch.email]))

    twice = post(officer, f"/gemeente/{action_id}/vervolg", f"/gemeente/{action_id}",
                 update_nl="Nog een keer.")
    assert twice.status_code == 302
    shown = officer.get(f"/gemeente/{action_id}").get_data(as_text=True)
    assert "Het vervolgbericht is al verstuurd" in shown
    assert 'id="update-sent"' in shown and "update-form" not in shown
    assert db.scalar(select(func.count(Delivery.id)).where(
        Delivery.action_id == action_id, Delivery.purpose == DeliveryPurpose.UPDATE)) == 2
    assert db.scalar(select(func.count(InquiryReaction.id))) == 1


def test_an_empty_update_is_refused_and_nothing_is_sent(officer: FlaskClient, db: Session,
                                                        worker) -> None:
    participant(db)
    action_id = create(officer)
    post(officer, f"/gemeente/{action_id}/versturen", f"/gemeente/{action_id}")
    worker()
    response = post(officer, f"/gemeente/{action_id}/vervolg", f"/gemeente/{action_id}",
                    update_nl="   ", update_en="Only English")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Vul de tekst van het vervolgbericht in." in page and "Only English" in page
    assert db.get(Action, action_id).update_nl is None


def test_an_expired_session_form_keeps_what_was_typed(officer: FlaskClient) -> None:
    path = "/gemeente/buurtonderzoek/nieuw"
    data = form_data(officer, path, csrf_token="verlopen", title_nl="Mijn lange tekst")
    response = officer.post(path, data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Het sessieformulier is verlopen" in page and 'value="Mijn lange tekst"' in page


def test_the_organisation_of_a_user_decides_the_meldkamer(app, db: Session) -> None:
    from outbound.inquiry import meldkamer_for

    utrecht = db.scalar(select(User).where(User.email == "gemeente@example.org"))
    assert meldkamer_for(utrecht.organisation).code == "MN"
    police = db.scalar(select(Organisation).where(Organisation.name == "Politie Midden-Nederland"))
    assert meldkamer_for(police) == db.scalar(select(Meldkamer).where(Meldkamer.code == "MN"))
    admin = db.scalar(select(User).where(User.email == "beheer@example.org"))
    assert meldkamer_for(admin.organisation) is None


def test_every_text_on_these_pages_has_english() -> None:
    from pathlib import Path

    from web.i18n import ENGLISH

    templates = Path(__file__).parents[2] / "web" / "templates"
    texts = {text for folder in ("municipal", "reaction")
             for page in (templates / folder).glob("*.html")
             for text in re.findall(r"_\('((?:[^'\\]|\\.)*)'", page.read_text())}
    from web.municipal import EXPIRED
    from web.municipal_forms import TEXT_LABEL, TEXT_MISSING
    from web.reaction import EXPIRED_FORM

    texts |= {EXPIRED, EXPIRED_FORM, *TEXT_LABEL.values(), *TEXT_MISSING.values()}
    assert texts and sorted(t for t in texts if t not in ENGLISH) == []
