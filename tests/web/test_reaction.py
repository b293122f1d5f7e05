"""The public reaction form behind an inquiry e-mail's personal link: no login, one reaction
per e-mail, clear pages for a link that is old, wrong or used, or an inquiry that is closed."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

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
    Meldkamer,
    Organisation,
    Participant,
    ParticipantStatus,
    Urgency,
)
from outbound.links import REACTION_SALT, reaction_token
from tests.web.helpers import csrf_token

SECRET = "test-secret-key"  # the settings fixture's SECRET_KEY
_numbers = iter(range(5_000, 9_999_999))


def _delivery(db: Session, action: Action, *, purpose=DeliveryPurpose.ALERT,
              channel=Channel.EMAIL, language=Language.NL) -> Delivery:
    number = next(_numbers)
    person = Participant(phone=f"+3169{number:07d}", email=f"r{number}@example.org",
                         status=ParticipantStatus.VERIFIED, channels=4, language=language)
    delivery = Delivery(action=action, participant=person, channel=channel, purpose=purpose,
                        language=language, status=DeliveryStatus.SENT)
    db.add(delivery)
    db.commit()
    return delivery


@pytest.fixture
def inquiry(app, db: Session) -> Action:
    """An active inquiry of Gemeente Utrecht, as sent (its deliveries are made per test)."""
    action = Action(kind=ActionKind.NEIGHBOURHOOD_INQUIRY, urgency=Urgency.NORMAL,
                    status=ActionStatus.ACTIVE, title_nl="Inbraak Biltstraat",
                    title_en="Burglary Biltstraat",
                    description_nl="Wie zag gisteravond iemand bij nummer 12?",
                    description_en="Who saw anyone at number 12 last night?",
                    center_lat=52.09, center_lon=5.12, radius_m=500,
                    organisation=db.scalar(select(Organisation)
                                           .where(Organisation.name == "Gemeente Utrecht")),
                    meldkamer=db.scalar(select(Meldkamer).where(Meldkamer.code == "MN")),
                    started_at=datetime.now(UTC))
    db.add(action)
    db.commit()
    return action


def _path(delivery: Delivery) -> str:
    return f"/reactie/{reaction_token(SECRET, delivery.id)}"


def _react(client: FlaskClient, path: str, **data: str):
    return client.post(path, data={"csrf_token": csrf_token(client, path), **data})


def _reactions(db: Session) -> int:
    return db.scalar(select(func.count(InquiryReaction.id))) or 0


def test_the_link_opens_the_question_and_takes_one_reaction(client: FlaskClient, db: Session,
                                                            inquiry: Action) -> None:
    delivery = _delivery(db, inquiry)
    path = _path(delivery)
    page = client.get(path)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Inbraak Biltstraat" in text and "Wie zag gisteravond iemand bij nummer 12?" in text
    assert 'id="reaction-text"' in text and 'id="reaction-contact"' in text
    assert "niet verplicht" in text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in page.headers["Cache-Control"]
    response = _react(client, path, text="  Ik zag een man met een ladder.  ",
                      contact="buurman@example.org")
    assert response.status_code == 302 and response.headers["Location"].endswith("/bedankt")
    assert "Bedankt voor uw reactie" in client.get("/reactie/bedankt").get_data(as_text=True)
    [reaction] = db.scalars(select(InquiryReaction)).all()
    assert (reaction.action_id, reaction.delivery_id) == (inquiry.id, delivery.id)
    assert reaction.text == "Ik zag een man met een ladder."
    assert reaction.contact == "buurman@example.org"
    [event] = db.scalars(select(AuditEvent).where(AuditEvent.verb == "react")).all()
    assert event.actor == f"reaction:{delivery.id}" and event.user_id is None
    assert event.object_id == str(reaction.id) and event.ip is None
    assert "ladder" not in str(event.details) and "buurman" not in str(event.details)


def test_a_second_reaction_through_the_same_link_is_refused(client: FlaskClient, db: Session,
                                                            inquiry: Action) -> None:
    path = _path(_delivery(db, inquiry))
    token = csrf_token(client, path)
    first = client.post(path, data={"csrf_token": token, "text": "Eerste."})
    second = client.post(path, data={"csrf_token": token, "text": "Tweede."})  # a double click
    assert first.status_code == 302
    assert second.status_code == 200
    assert "U heeft al gereageerd" in second.get_data(as_text=True)
    again = client.get(path)
    assert 'data-state="already"' in again.get_data(as_text=True)
    assert _reactions(db) == 1
    assert db.scalar(select(InquiryReaction.text)) == "Eerste."


def test_two_links_of_the_same_inquiry_each_take_their_own_reaction(
        client: FlaskClient, db: Session, inquiry: Action) -> None:
    for text in ("Van de een.", "Van de ander."):
        path = _path(_delivery(db, inquiry))
        assert _react(client, path, text=text).status_code == 302
    assert _reactions(db) == 2


@pytest.mark.parametrize(("text", "contact", "message"), [
    ("", "", "Vul uw reactie in."),
    ("   ", "06 12345678", "Vul uw reactie in."),
    ("x" * 2001, "", "Uw reactie is te lang: hoogstens 2000 tekens."),
    ("Gezien.", "buurman@", "Dit is geen geldig e-mailadres."),
    ("Gezien.", "bel me maar", "Vul een geldig e-mailadres of telefoonnummer in"),
    ("Gezien.", "12", "Vul een geldig e-mailadres of telefoonnummer in"),
])
def test_bad_input_is_named_in_dutch_and_what_was_typed_stays(
        client: FlaskClient, db: Session, inquiry: Action, text: str, contact: str,
        message: str) -> None:
    path = _path(_delivery(db, inquiry))
    response = _react(client, path, text=text, contact=contact)
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and message in page
    assert 'id="reaction-errors"' in page
    if contact:
        assert f'value="{contact}"' in page
    if text.strip():
        assert text[:50] in page
    assert _reactions(db) == 0


def test_a_phone_number_is_kept_in_international_form(client: FlaskClient, db: Session,
                                                      inquiry: Action) -> None:
    path = _path(_delivery(db, inquiry))
    _react(client, path, text="Bel me.", contact="06-1234 5678")
    assert db.scalar(select(InquiryReaction.contact)) == "+31612345678"


def test_an_expired_link_gets_a_clear_page(client: FlaskClient, db: Session, inquiry: Action,
                                           monkeypatch) -> None:
    delivery = _delivery(db, inquiry)
    fifteen_days_ago = int(time.time()) - 15 * 86400
    monkeypatch.setattr("itsdangerous.timed.TimestampSigner.get_timestamp",
                        lambda self: fifteen_days_ago)
    old = reaction_token(SECRET, delivery.id)
    monkeypatch.undo()
    for response in (client.get(f"/reactie/{old}"),
                     client.post(f"/reactie/{old}", data={"csrf_token": csrf_token(client),
                                                        "text": "Te laat."})):
        assert response.status_code == 410
        page = response.get_data(as_text=True)
        assert "Deze link is verlopen" in page and 'data-state="expired"' in page
    assert _reactions(db) == 0


@pytest.mark.parametrize("tamper", [
    lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
    lambda token: "x" + token,
    lambda token: "nonsense",
    lambda token: URLSafeTimedSerializer(SECRET, salt="password-reset").dumps(1),
    lambda token: URLSafeTimedSerializer("another-secret", salt=REACTION_SALT).dumps(1),
    lambda token: URLSafeTimedSerializer(SECRET, salt=REACTION_SALT).dumps("1"),
])
def test_a_tampered_or_foreign_link_gets_a_clear_page(client: FlaskClient, db: Session,
                                                      inquiry: Action, tamper) -> None:
    delivery = _delivery(db, inquiry)
    response = client.get(f"/reactie/{tamper(reaction_token(SECRET, delivery.id))}")
    assert response.status_code == 400
    assert "Deze link werkt niet" in response.get_data(as_text=True)


@pytest.mark.parametrize(("purpose", "channel"), [
    (DeliveryPurpose.UPDATE, Channel.EMAIL),
    (DeliveryPurpose.ALERT, Channel.PUSH),
])
def test_a_link_to_anything_but_an_inquiry_email_opens_nothing(
        client: FlaskClient, db: Session, inquiry: Action, purpose, channel) -> None:
    response = client.get(_path(_delivery(db, inquiry, purpose=purpose, channel=channel)))
    assert response.status_code == 400


def test_a_search_actions_delivery_opens_no_form(client: FlaskClient, db: Session,
                                                 inquiry: Action) -> None:
    inquiry.kind = ActionKind.SUSPECT
    db.commit()
    assert client.get(_path(_delivery(db, inquiry))).status_code == 400


def test_a_closed_inquiry_takes_no_more_reactions(client: FlaskClient, db: Session,
                                                  inquiry: Action) -> None:
    path = _path(_delivery(db, inquiry))
    token = csrf_token(client, path)
    inquiry.status = ActionStatus.ENDED
    db.commit()
    response = client.post(path, data={"csrf_token": token, "text": "Nog iets."})
    assert response.status_code == 410
    assert "Dit buurtonderzoek is gesloten" in response.get_data(as_text=True)
    assert _reactions(db) == 0


def test_english_recipients_read_the_question_and_the_form_in_english(
        client: FlaskClient, db: Session, inquiry: Action) -> None:
    path = _path(_delivery(db, inquiry, language=Language.EN)) + "?lang=en"
    page = client.get(path).get_data(as_text=True)
    assert "Burglary Biltstraat" in page and "Who saw anyone at number 12 last night?" in page
    assert "Reply to a neighbourhood inquiry" in page and "optional" in page
    response = client.post(path, data={"csrf_token": csrf_token(client, path), "text": ""})
    assert "Please write your reply." in response.get_data(as_text=True)


def test_a_form_left_open_too_long_comes_back_with_the_text(client: FlaskClient, db: Session,
                                                           inquiry: Action) -> None:
    path = _path(_delivery(db, inquiry))
    client.get(path)
    response = client.post(path, data={"csrf_token": "verlopen", "text": "Mijn verhaal.",
                                       "contact": "0612345678"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Het formulier was verlopen" in page and "Mijn verhaal." in page
    assert 'value="0612345678"' in page
    assert _reactions(db) == 0
    again = client.post(path, data={"csrf_token": csrf_token(client, path),
                                    "text": "Mijn verhaal."})
    assert again.status_code == 302 and _reactions(db) == 1
