"""E-mail against a real SMTP server on loopback (aiosmtpd), not a mock."""

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import (
    ActionKind,
    Channel,
    Delivery,
    DeliveryStatus,
    Language,
    Participant,
    Urgency,
)
from core.redis_server import free_port
from fakes.smtp import Inbox, SmtpServer
from outbound.fanout import start_action
from outbound.links import read_reaction_token
from outbound.providers import Message, ProviderError
from outbound.providers.smtp import SmtpProvider
from outbound.queues import enqueue
from tests.outbound.conftest import BY_EMAIL, NOW


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    with SmtpServer() as server:
        yield server.inbox, server.port


def _send(port: int, to: str) -> str:
    provider = SmtpProvider("127.0.0.1", port, "burgernet@example.org")
    return asyncio.run(provider.send(Message(1, Channel.EMAIL, to, "Tekst van het bericht.",
                                             "nl", subject="Burgernet: Vermist kind")))


def test_an_email_reaches_the_smtp_server(smtp_server) -> None:
    inbox, port = smtp_server
    message_id = _send(port, "deelnemer@example.org")
    [(envelope, email)] = inbox.messages
    assert envelope.rcpt_tos == ["deelnemer@example.org"]
    assert email["Subject"] == "Burgernet: Vermist kind"
    assert email["Message-ID"] == message_id and email["Content-Language"] == "nl"
    assert "Tekst van het bericht." in email.get_payload()


@pytest.mark.parametrize(("reply", "retryable"), [
    ("550 5.1.1 No such user", False),
    ("451 4.3.0 Try again later", True),
])
def test_refusals_say_whether_to_retry(smtp_server, reply: str, retryable: bool) -> None:
    inbox, port = smtp_server
    inbox.refuse["weg@example.org"] = reply
    with pytest.raises(ProviderError) as caught:
        _send(port, "weg@example.org")
    assert caught.value.retryable is retryable and reply[:3] in str(caught.value)


def test_a_server_that_is_down_is_worth_a_retry() -> None:
    with pytest.raises(ProviderError) as caught:
        _send(free_port(), "deelnemer@example.org")
    assert caught.value.retryable and caught.value.code == "network"
    assert caught.value.unavailable  # nothing was taken: no attempt counts


def test_a_connection_dropped_after_data_is_a_failed_attempt_not_a_lookup(smtp_server) -> None:
    """The server may have the message (here it does), and SMTP cannot be asked: the send
    counts as a failed attempt and goes again, a possible second e-mail rather than a lost
    alert (docs/reliability.md)."""
    inbox, port = smtp_server
    inbox.drop_after_data = True
    with pytest.raises(ProviderError) as caught:
        _send(port, "deelnemer@example.org")
    assert len(inbox.messages) == 1
    error = caught.value
    assert error.retryable and not error.unavailable and not error.unknown


def test_a_preventive_message_goes_out_by_email(db: Session, sessions, population, make_action,
                                                runtime, work, smtp_server) -> None:
    inbox, port = smtp_server
    runtime.providers[Channel.EMAIL] = lambda: SmtpProvider("127.0.0.1", port,
                                                            "burgernet@example.org")
    action = make_action(kind=ActionKind.PREVENTIVE, urgency=Urgency.NORMAL, radius_m=8000)
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    emails = db.scalars(select(Delivery).where(Delivery.action_id == action.id,
                                               Delivery.channel == Channel.EMAIL)).all()
    assert emails and {d.status for d in emails} == {DeliveryStatus.SENT}
    assert len(inbox.messages) == len(emails)
    assert {e["Message-ID"] for _, e in inbox.messages} == {d.provider_id for d in emails}


def test_each_inquiry_email_carries_a_personal_link(db: Session, sessions, population,
                                                    make_action, runtime, work,
                                                    smtp_server) -> None:
    inbox, port = smtp_server
    runtime.providers[Channel.EMAIL] = lambda: SmtpProvider("127.0.0.1", port,
                                                            "burgernet@example.org")
    action = make_action(kind=ActionKind.NEIGHBOURHOOD_INQUIRY, urgency=Urgency.NORMAL,
                         radius_m=8000)
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    emails = {d.provider_id: d for d in db.scalars(
        select(Delivery).where(Delivery.action_id == action.id))}
    assert emails and len(inbox.messages) == len(emails)
    settings = runtime.settings
    for envelope, email in inbox.messages:
        delivery = emails[email["Message-ID"]]
        assert envelope.rcpt_tos == [db.get(Participant, delivery.participant_id).email]
        body = email.get_payload(decode=True).decode()
        [link] = [word for word in body.split() if "/reactie/" in word]
        token = link.removeprefix(f"{settings.public_url}/reactie/").split("?")[0]
        assert read_reaction_token(settings.secret_key, token, timedelta(days=14)) == \
            delivery.id
        english = BY_EMAIL[envelope.rcpt_tos[0]].language == Language.EN
        assert email["Subject"].startswith("Burgernet: neighbourhood inquiry - " if english
                                           else "Burgernet: buurtonderzoek - ")


def test_a_subject_with_a_line_break_goes_out_on_one_line(smtp_server) -> None:
    """Python refuses to write a header with a line break (which could add headers, a Bcc)."""
    inbox, port = smtp_server
    provider = SmtpProvider("127.0.0.1", port, "burgernet@example.org")
    asyncio.run(provider.send(Message(1, Channel.EMAIL, "deelnemer@example.org", "Tekst.", "nl",
                                      subject="Burgernet: Let op\r\nBcc: x@example.org\u2028")))
    [(envelope, email)] = inbox.messages
    assert email["Subject"] == "Burgernet: Let op Bcc: x@example.org"
    assert email["Bcc"] is None and envelope.rcpt_tos == ["deelnemer@example.org"]


def test_a_title_stored_with_a_line_break_still_reaches_everyone_by_email(
        db: Session, sessions, population, make_action, runtime, work, smtp_server) -> None:
    """A draft from before titles were kept to one line: its e-mails all go out (before, each
    batch failed whole and its e-mails stayed in 'sending')."""
    inbox, port = smtp_server
    runtime.providers[Channel.EMAIL] = lambda: SmtpProvider("127.0.0.1", port,
                                                            "burgernet@example.org")
    action = make_action(kind=ActionKind.PREVENTIVE, urgency=Urgency.NORMAL, radius_m=8000)
    action.title_nl = "Let op\nBcc: x@example.org"
    db.commit()
    result = start_action(sessions, action.id, now=NOW)
    db.commit()
    enqueue(runtime.redis, result.batches)
    work()
    db.expire_all()
    emails = db.scalars(select(Delivery).where(Delivery.action_id == action.id,
                                               Delivery.channel == Channel.EMAIL)).all()
    assert emails and {d.status for d in emails} == {DeliveryStatus.SENT}
    assert len(inbox.messages) == len(emails)
    assert {e["Subject"] for _, e in inbox.messages} <= {
        "Burgernet: Let op Bcc: x@example.org", "Burgernet: Man in red coat"}
