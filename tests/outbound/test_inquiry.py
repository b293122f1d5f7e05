"""Neighbourhood inquiries below the web: personal links, reactions (once each, also when two
arrive at once), the officer's counts and the one update."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import (
    ActionKind,
    Channel,
    Delivery,
    DeliveryPurpose,
    DeliveryStatus,
    InquiryReaction,
    Participant,
    Urgency,
)
from outbound.actions import ActionInvalid
from outbound.fanout import ActionError, start_action
from outbound.inquiry import (
    AlreadyReacted,
    InquiryClosed,
    ReactionInvalid,
    clean_reaction,
    counts,
    open_reaction,
    submit_reaction,
    update_and_queue,
)
from outbound.links import (
    LinkError,
    LinkExpired,
    reaction_link,
    reaction_token,
    read_reaction_token,
)
from outbound.queues import enqueue
from tests.outbound.conftest import BY_EMAIL, NOW

SECRET = "test-secret-key"
LIFETIME = timedelta(days=14)


def test_a_token_names_its_delivery_and_nothing_else_reads_it() -> None:
    token = reaction_token(SECRET, 42)
    assert read_reaction_token(SECRET, token, LIFETIME) == 42
    with pytest.raises(LinkError):
        read_reaction_token("another-secret", token, LIFETIME)
    with pytest.raises(LinkError):
        read_reaction_token(SECRET, token.replace(".", ".x", 1), LIFETIME)
    assert "42" not in token.split(".")[1:]  # the id is in the payload, signed, not a path


def test_a_token_expires_after_its_lifetime(monkeypatch) -> None:
    signed = int(time.time()) - 3 * 86400
    monkeypatch.setattr("itsdangerous.timed.TimestampSigner.get_timestamp", lambda self: signed)
    token = reaction_token(SECRET, 7)
    monkeypatch.undo()
    assert read_reaction_token(SECRET, token, timedelta(days=4)) == 7
    with pytest.raises(LinkExpired):
        read_reaction_token(SECRET, token, timedelta(days=2))


def test_the_link_is_public_and_in_the_recipients_language() -> None:
    dutch = reaction_link("https://burgernet.example.nl/", SECRET, 5, "nl")
    english = reaction_link("https://burgernet.example.nl", SECRET, 5, "en")
    assert dutch.startswith("https://burgernet.example.nl/reactie/") and "?" not in dutch
    assert english.endswith("?lang=en")


@pytest.mark.parametrize(("contact", "kept"), [
    ("", None), ("  ", None), ("buur@example.org", "buur@example.org"),
    ("06 12345678", "+31612345678"), ("+32 470 12 34 56", "+32470123456"),
])
def test_a_contact_is_optional_and_checked(contact: str, kept: str | None) -> None:
    assert clean_reaction("Gezien.", contact) == ("Gezien.", kept)


@pytest.mark.parametrize(("text", "contact", "fields"), [
    (None, None, {"text"}), ("x" * 2001, "geen@", {"text", "contact"}),
    ("Gezien.", "abc", {"contact"}), ("Gezien.", "a@b", {"contact"}),
])
def test_a_bad_reaction_names_every_wrong_field(text, contact, fields) -> None:
    with pytest.raises(ReactionInvalid) as caught:
        clean_reaction(text, contact)
    assert set(caught.value.errors) == fields


@pytest.fixture
def asked(db: Session, sessions, population, make_action, runtime, work):
    """An inquiry whose e-mails went out (to the console provider of the test runtime)."""
    action = make_action(kind=ActionKind.NEIGHBOURHOOD_INQUIRY, urgency=Urgency.NORMAL,
                         radius_m=8000)
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    db.expire_all()  # the worker wrote in its own sessions
    return action


def _emails(db: Session, action) -> list[Delivery]:
    return db.scalars(select(Delivery).where(Delivery.action_id == action.id,
                                             Delivery.purpose == DeliveryPurpose.ALERT)
                      .order_by(Delivery.id)).all()


def test_every_inquiry_email_carries_the_link_of_its_own_delivery(db: Session, asked,
                                                                  runtime, tmp_path) -> None:
    sent = [json.loads(line) for line in (tmp_path / "console.jsonl").read_text().splitlines()]
    deliveries = _emails(db, asked)
    assert len(sent) == len(deliveries) > 1 and {r["channel"] for r in sent} == {"email"}
    assert {r["language"] for r in sent} == {"nl", "en"}
    for record in sent:
        assert record["language"] == BY_EMAIL[record["to"]].language
        link = next(word for word in record["body"].split() if "/reactie/" in word)
        assert link.startswith(runtime.settings.public_url + "/reactie/")
        token = link.rsplit("/", 1)[1].split("?")[0]
        assert read_reaction_token(runtime.settings.secret_key, token, LIFETIME) == \
            record["delivery"]
        assert ("Burgernet neighbourhood inquiry: Man in red coat" if record["language"] == "en"
                else "Burgernet-buurtonderzoek: Man in rode jas") in record["body"]


def test_two_reactions_racing_through_one_link_store_one(db: Session, asked) -> None:
    delivery = _emails(db, asked)[0]
    token = reaction_token(SECRET, delivery.id)
    # both requests opened the form before either was stored; the other one commits first
    target = open_reaction(db, token, secret=SECRET, lifetime=LIFETIME)
    db.add(InquiryReaction(action_id=asked.id, delivery_id=delivery.id, text="Eerste."))
    db.commit()
    with pytest.raises(AlreadyReacted):
        submit_reaction(db, target, "Tweede.", None, now=NOW)
    db.commit()  # the session is still usable: only the savepoint was rolled back
    assert db.scalars(select(InquiryReaction.text)).all() == ["Eerste."]
    with pytest.raises(AlreadyReacted):
        open_reaction(db, token, secret=SECRET, lifetime=LIFETIME)


def test_a_closed_inquiry_opens_no_form(db: Session, asked) -> None:
    from core.models import Outcome
    from outbound.feedback import end_action

    token = reaction_token(SECRET, _emails(db, asked)[0].id)
    end_action(db, asked.id, Outcome.CANCELLED, None, now=NOW)
    db.commit()
    with pytest.raises(InquiryClosed):
        open_reaction(db, token, secret=SECRET, lifetime=LIFETIME)


def test_the_counts_follow_the_inquiry(db: Session, asked) -> None:
    emails = _emails(db, asked)
    emails[0].status = DeliveryStatus.FAILED
    emails[1].status = DeliveryStatus.QUEUED
    emails[1].next_attempt_at = datetime.now(UTC) + timedelta(hours=3)
    db.add(InquiryReaction(action_id=asked.id, delivery_id=emails[2].id, text="Gezien."))
    db.commit()
    result = counts(db, asked.id, datetime.now(UTC))
    assert result.total == len(emails) and result.by_channel == {Channel.EMAIL: len(emails)}
    assert (result.failed, result.waiting, result.held, result.reacted) == (1, 1, 1, 1)
    assert result.sent == len(emails) - 2 and result.updates == 0


def test_an_update_holds_no_control_characters(asked, runtime, redis_client) -> None:
    with pytest.raises(ActionInvalid) as caught:
        update_and_queue(runtime.sessions, redis_client, asked.id, "Gevonden.\x00",
                         "Found.\x1b", now=NOW)
    assert caught.value.errors == dict.fromkeys(
        ("update_nl", "update_en"), "De tekst bevat een stuurteken; alleen regeleinden en tabs "
                                    "mogen.")


def test_the_update_is_checked_sent_once_and_held_by_quiet_hours(
        db: Session, asked, runtime, redis_client) -> None:
    with pytest.raises(ActionInvalid) as caught:
        update_and_queue(runtime.sessions, redis_client, asked.id, "  ", "x" * 2001,
                         now=NOW)
    assert set(caught.value.errors) == {"update_nl", "update_en"}
    for delivery in _emails(db, asked):  # only the sleeper is in quiet hours (not the demo)
        db.get(Participant, delivery.participant_id).quiet_hours = {}
    sleeper = db.get(Participant, _emails(db, asked)[0].participant_id)
    local = datetime.now(ZoneInfo("Europe/Amsterdam"))
    sleeper.quiet_hours = {"email": [(local - timedelta(hours=1)).strftime("%H:%M"),
                                     (local + timedelta(hours=1)).strftime("%H:%M")]}
    db.commit()
    ending = update_and_queue(runtime.sessions, redis_client, asked.id, "Hij is gevonden.",
                              None, now=datetime.now(UTC))
    updates = db.scalars(select(Delivery).where(
        Delivery.action_id == asked.id, Delivery.purpose == DeliveryPurpose.UPDATE)).all()
    assert ending.results == len(updates) == len(_emails(db, asked))
    assert [u.participant_id for u in updates if u.next_attempt_at] == [sleeper.id]
    assert len(ending.held) == 1
    with pytest.raises(ActionError):
        update_and_queue(runtime.sessions, redis_client, asked.id, "Nog eens.", None, now=NOW)
    db.expire_all()
    assert db.get(type(asked), asked.id).update_nl == "Hij is gevonden."
