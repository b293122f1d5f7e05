from collections.abc import Callable
from dataclasses import replace

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator
from twilio.rest.api.v2010.account.call import CallInstance
from twilio.rest.api.v2010.account.message import MessageInstance
from werkzeug.datastructures import MultiDict

from core.models import (
    Action,
    ActionKind,
    Channel,
    Delivery,
    DeliveryStatus,
    Meldkamer,
    Organisation,
    OrganisationKind,
    Participant,
    Urgency,
)
from fakes.twilio import AUTH_TOKEN

URL = "/webhooks/twilio/status"


@pytest.fixture
def client(make_app: Callable[..., Flask], twilio_signed: dict[str, str]) -> FlaskClient:
    return make_app(**twilio_signed, public_url="https://bn.example").test_client()


@pytest.fixture
def delivery(db: Session) -> Delivery:
    org = Organisation(name="Politie Webhook", kind=OrganisationKind.POLICE)
    action = Action(kind=ActionKind.SUSPECT, urgency=Urgency.URGENT, title_nl="x",
                    center_lat=52.0, center_lon=5.0, radius_m=100, organisation=org,
                    meldkamer=db.scalar(select(Meldkamer).where(Meldkamer.code == "MN")))
    person = Participant(phone="+31690007777")
    item = Delivery(action=action, participant=person, channel=Channel.SMS,
                    status=DeliveryStatus.SENT, provider_id="SM" + "a" * 32)
    db.add(item)
    db.commit()
    return item


def _post(client: FlaskClient, params: dict[str, str], token: str = AUTH_TOKEN):
    signature = RequestValidator(token).compute_signature("https://bn.example" + URL, params)
    return client.post(URL, data=params, headers={"X-Twilio-Signature": signature})


def test_a_signed_callback_moves_the_delivery_forward(client, db, delivery) -> None:
    response = _post(client, {"MessageSid": delivery.provider_id, "MessageStatus": "delivered"})
    assert response.status_code == 204
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.completed_at


def test_late_and_repeated_callbacks_never_move_it_back(client, db, delivery) -> None:
    for status in ("delivered", "sent", "delivered", "queued", "failed"):
        assert _post(client, {"MessageSid": delivery.provider_id,
                              "MessageStatus": status}).status_code == 204
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.DELIVERED


def test_a_failure_keeps_the_providers_code(client, db, delivery) -> None:
    _post(client, {"MessageSid": delivery.provider_id, "MessageStatus": "undelivered",
                   "ErrorCode": "30005"})
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.provider_error == "undelivered (30005)"


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": "forged"}])
def test_unsigned_or_forged_callbacks_are_refused(client, db, delivery, headers) -> None:
    response = client.post(URL, data={"MessageSid": delivery.provider_id,
                                      "MessageStatus": "delivered"}, headers=headers)
    assert response.status_code == 403
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.SENT


def test_a_callback_signed_with_another_token_is_refused(client, delivery) -> None:
    params = {"MessageSid": delivery.provider_id, "MessageStatus": "delivered"}
    assert _post(client, params, token="someone-else").status_code == 403


@pytest.mark.parametrize(("params", "status"), [
    ({"MessageStatus": "delivered"}, 400),
    ({"MessageSid": "SM-unknown", "MessageStatus": "delivered"}, 204),
])
def test_malformed_callbacks_get_a_clear_answer(client, params, status) -> None:
    assert _post(client, params).status_code == status


def test_a_finished_call_frees_its_line_on_the_trunk(client, db, delivery, redis_client,
                                                     settings) -> None:
    from outbound.throttle import call_slots, call_token

    delivery.channel, delivery.provider_id = Channel.VOICE, "CA" + "b" * 32
    db.commit()
    slots = call_slots(redis_client, replace(settings, voice_max_concurrent=1))
    assert slots.acquire(call_token(delivery.id))
    assert not slots.acquire("delivery:other")
    _post(client, {"CallSid": delivery.provider_id, "CallStatus": "completed"})
    assert slots.acquire("delivery:other")


def _post_to(client: FlaskClient, path: str, params: dict[str, str]):
    signature = RequestValidator(AUTH_TOKEN).compute_signature("https://bn.example" + path,
                                                               params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def test_a_call_that_ends_before_its_batch_recorded_it_frees_its_line_and_keeps_its_status(
        client, db, delivery, redis_client, settings) -> None:
    from outbound.callbacks import apply_early
    from outbound.throttle import call_slots, call_token

    delivery.channel, delivery.status, delivery.provider_id = \
        Channel.VOICE, DeliveryStatus.SENDING, None
    db.commit()
    sid = "CA" + "c" * 32
    slots = call_slots(redis_client, replace(settings, voice_max_concurrent=1))
    assert slots.acquire(call_token(delivery.id))
    answer = _post_to(client, f"{URL}?delivery={delivery.id}",
                      {"CallSid": sid, "CallStatus": "completed"})
    assert answer.status_code == 204
    assert slots.acquire("delivery:other"), "the line is free although the sid is not known"
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.SENDING
    # the batch now records the send, and then the status that came first
    delivery.status, delivery.provider_id = DeliveryStatus.SENT, sid
    db.commit()
    assert apply_early(db, redis_client, [sid], delivery.updated_at) == []
    db.commit()
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.ANSWERED
    assert not redis_client.exists(f"early-status:{sid}")


def test_a_busy_signal_before_the_record_is_retried_after_it(client, db, delivery,
                                                            redis_client) -> None:
    from outbound.callbacks import apply_early

    delivery.channel, delivery.status, delivery.provider_id = \
        Channel.VOICE, DeliveryStatus.SENDING, None
    delivery.attempts = 1
    db.commit()
    sid = "CA" + "d" * 32
    _post_to(client, f"{URL}?delivery={delivery.id}", {"CallSid": sid, "CallStatus": "busy"})
    delivery.status, delivery.provider_id = DeliveryStatus.SENT, sid
    db.commit()
    again = apply_early(db, redis_client, [sid], delivery.updated_at)
    db.commit()
    db.refresh(delivery)
    assert again == [delivery.id] and delivery.status == DeliveryStatus.QUEUED
    assert delivery.next_attempt_at is not None


def test_a_late_repeat_is_not_kept_for_later(client, db, delivery, redis_client) -> None:
    _post(client, {"MessageSid": delivery.provider_id, "MessageStatus": "delivered"})
    _post(client, {"MessageSid": delivery.provider_id, "MessageStatus": "delivered"})
    _post(client, {"MessageSid": delivery.provider_id, "MessageStatus": "sent"})
    assert not redis_client.keys("early-status:*")


# --- every value of a repeated parameter is signed ----------------------------------------

def _post_multi(client: FlaskClient, signed: MultiDict, sent: MultiDict | None = None):
    """Signed by the official validator over every value, as Twilio signs a repeated name."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature("https://bn.example" + URL, signed)
    return client.post(URL, data=sent if sent is not None else signed,
                       headers={"X-Twilio-Signature": signature})


def test_a_signed_request_with_a_repeated_parameter_is_taken(client, db, delivery) -> None:
    params = MultiDict([("MessageSid", delivery.provider_id), ("MessageStatus", "delivered"),
                        ("Tag", "alpha"), ("Tag", "beta")])
    assert _post_multi(client, params).status_code == 204
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.DELIVERED


def test_a_changed_second_value_of_a_repeated_parameter_is_refused(client, db, delivery) -> None:
    signed = MultiDict([("MessageSid", delivery.provider_id), ("MessageStatus", "delivered"),
                        ("Tag", "alpha"), ("Tag", "beta")])
    forged = MultiDict([("MessageSid", delivery.provider_id), ("MessageStatus", "delivered"),
                        ("Tag", "alpha"), ("Tag", "gamma")])
    assert _post_multi(client, signed, forged).status_code == 403
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.SENT


# --- every status Twilio documents is taken; an unknown one is logged, not refused --------

#: The Message and Call resources' status enums, as the official twilio package defines them,
#: plus the call progress events a status callback may carry (initiated, ringing, answered).
MESSAGE_STATUSES = sorted(v for k, v in vars(MessageInstance.Status).items() if k.isupper())
CALL_STATUSES = sorted({v for k, v in vars(CallInstance.Status).items() if k.isupper()}
                       | {"initiated", "ringing", "in-progress", "completed"})


def test_the_documented_statuses_are_the_ones_twilio_documents() -> None:
    assert {"partially_delivered", "receiving", "received", "accepted", "scheduled", "read",
            "canceled"} <= set(MESSAGE_STATUSES)
    assert {"queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed",
            "no-answer", "canceled"} <= set(CALL_STATUSES)


@pytest.mark.parametrize("value", MESSAGE_STATUSES)
def test_every_message_status_is_taken(client, delivery, value, caplog) -> None:
    answer = _post(client, {"MessageSid": delivery.provider_id, "MessageStatus": value})
    assert answer.status_code == 204
    assert "unknown status" not in caplog.text


@pytest.mark.parametrize("value", CALL_STATUSES)
def test_every_call_status_is_taken(client, db, delivery, value, caplog) -> None:
    delivery.channel, delivery.provider_id = Channel.VOICE, "CA" + "e" * 32
    db.commit()
    answer = _post(client, {"CallSid": delivery.provider_id, "CallStatus": value})
    assert answer.status_code == 204
    assert "unknown status" not in caplog.text


@pytest.mark.parametrize(("value", "expected"), [
    ("partially_delivered", DeliveryStatus.SENT), ("receiving", DeliveryStatus.SENDING),
    ("received", DeliveryStatus.SENDING), ("read", DeliveryStatus.DELIVERED),
    ("canceled", DeliveryStatus.FAILED)])
def test_what_each_newer_message_status_does(client, db, delivery, value, expected) -> None:
    delivery.status = DeliveryStatus.SENDING
    db.commit()
    _post(client, {"MessageSid": delivery.provider_id, "MessageStatus": value})
    db.refresh(delivery)
    assert delivery.status == expected


def test_an_unknown_future_status_is_logged_and_answered_2xx_without_moving(
        client, db, delivery, redis_client, caplog) -> None:
    answer = _post(client, {"MessageSid": delivery.provider_id, "MessageStatus": "exploded"})
    assert answer.status_code == 204  # not 4xx: the provider would retry it forever
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.SENT
    assert "unknown status 'exploded'" in caplog.text
    assert not redis_client.keys("early-status:*")


# --- a replayed status callback moves nothing and counts nothing twice ---------------------

def _jobs(redis_client: redis.Redis, name: str) -> int:
    """Send jobs on queue NAME, due now or scheduled for after their backoff."""
    queue = Queue(name, connection=redis_client, serializer=JSONSerializer)
    return queue.count + ScheduledJobRegistry(queue=queue).count


def _forget_replays(redis_client: redis.Redis) -> None:
    for key in redis_client.scan_iter("webhook-seen:*"):
        redis_client.delete(key)


@pytest.mark.parametrize("redis_emptied", [False, True])
def test_a_replayed_busy_signal_is_retried_once(client, db, delivery, redis_client,
                                                redis_emptied) -> None:
    delivery.channel, delivery.provider_id, delivery.attempts = \
        Channel.VOICE, "CA" + "f" * 32, 1
    db.commit()
    busy = {"CallSid": delivery.provider_id, "CallStatus": "busy"}
    assert _post(client, busy).status_code == 204
    db.refresh(delivery)
    retry_at = delivery.next_attempt_at
    assert delivery.status == DeliveryStatus.QUEUED and retry_at is not None
    assert _jobs(redis_client, "voice-urgent") == 1
    if redis_emptied:
        _forget_replays(redis_client)
    assert _post(client, busy).status_code == 204
    db.refresh(delivery)
    assert (delivery.status, delivery.next_attempt_at) == (DeliveryStatus.QUEUED, retry_at)
    assert _jobs(redis_client, "voice-urgent") == 1


def test_a_replayed_end_of_the_last_call_does_not_free_the_line_of_the_next(
        client, db, delivery, redis_client, settings) -> None:
    from outbound.throttle import call_slots, call_token

    first = "CA" + "1" * 32
    delivery.channel, delivery.provider_id, delivery.attempts = Channel.VOICE, first, 1
    db.commit()
    slots = call_slots(redis_client, replace(settings, voice_max_concurrent=1))
    busy = {"CallSid": first, "CallStatus": "busy"}
    _post_to(client, f"{URL}?delivery={delivery.id}", busy)
    # the retry is claimed and its call placed: it holds the line, its CallSid not yet known
    delivery.status, delivery.provider_id = DeliveryStatus.SENDING, None
    db.commit()
    assert slots.acquire(call_token(delivery.id))
    _post_to(client, f"{URL}?delivery={delivery.id}", busy)  # the first call's, replayed
    assert not slots.acquire("delivery:other"), "the line of the call in progress was freed"
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.SENDING


def test_a_callback_that_failed_here_is_taken_when_the_provider_sends_it_again(
        client, db, delivery, monkeypatch) -> None:
    from web import webhooks

    real = webhooks.apply_or_keep

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    params = {"MessageSid": delivery.provider_id, "MessageStatus": "delivered"}
    monkeypatch.setattr(webhooks, "apply_or_keep", broken)
    assert _post(client, params).status_code == 500
    monkeypatch.setattr(webhooks, "apply_or_keep", real)
    assert _post(client, params).status_code == 204
    db.refresh(delivery)
    assert delivery.status == DeliveryStatus.DELIVERED
