"""/metrics: who may read it, what the webhooks and calls count, and no number in a label."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from core.metrics import MOST_DIGITS
from core.models import (
    Action,
    ActionKind,
    CallRecord,
    Channel,
    Delivery,
    DeliveryStatus,
    Meldkamer,
    Organisation,
    OrganisationKind,
    Participant,
    ParticipantStatus,
    Urgency,
)
from fakes.twilio import AUTH_TOKEN

PUBLIC = "https://bn.example"
TOKEN = "prometheus-reads-this-token"
CALLER = "+31612345678"


@pytest.fixture
def client(make_app: Callable[..., Flask], twilio_signed: dict[str, str]) -> FlaskClient:
    return make_app(**twilio_signed, public_url=PUBLIC, metrics_token=TOKEN).test_client()


def _signed(client: FlaskClient, path: str, params: dict[str, str]):
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def _scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for s in family.samples}


def test_loopback_reads_the_prometheus_text_format(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = _scrape(client)
    assert samples[("burgernet_queue_jobs", (("queue", "sms-urgent"),))] == 0
    assert samples[("burgernet_outbox_backlog", (("status", "queued"),))] >= 0
    assert samples[("burgernet_scrape_source_up", (("source", "redis"),))] == 1
    assert samples[("burgernet_scrape_source_up", (("source", "database"),))] == 1
    assert samples[("burgernet_workers", ())] == 0


@pytest.mark.parametrize(("address", "headers", "status"), [
    ("203.0.113.9", {}, 403),
    ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, 403),  # a proxy on this host
    ("127.0.0.1", {"Forwarded": "for=203.0.113.9"}, 403),
    ("203.0.113.9", {"Authorization": f"Bearer {TOKEN}"}, 200),
    ("203.0.113.9", {"Authorization": f"Bearer {TOKEN}x"}, 403),
    ("10.1.2.3", {"X-Forwarded-For": "127.0.0.1", "Authorization": f"Bearer {TOKEN}"}, 200),
])
def test_only_the_networks_or_the_token_read_metrics(client: FlaskClient, address: str,
                                                     headers: dict[str, str],
                                                     status: int) -> None:
    response = client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": address})
    assert response.status_code == status
    assert (b"burgernet_" in response.data) is (status == 200)


def test_behind_trusted_proxies_a_forwarded_loopback_is_no_loopback(
        make_app: Callable[..., Flask]) -> None:
    app = make_app(trusted_proxies=1)
    response = app.test_client().get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"},
                                     environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 403


def test_webhooks_are_timed_by_their_route_and_nothing_else(client: FlaskClient) -> None:
    call = {"CallSid": "CA" + "1" * 32, "From": "anonymous", "To": "+31800001100"}
    assert _signed(client, "/webhooks/twilio/voice/inbound", call).status_code == 200
    assert client.post("/webhooks/twilio/status", data={}).status_code == 403
    client.get("/login")
    samples = _scrape(client)
    timed = {labels: value for (name, labels), value in samples.items()
             if name == "burgernet_webhook_seconds_count"}
    assert timed == {(("route", "/webhooks/twilio/voice/inbound"), ("status", "2xx")): 1,
                     (("route", "/webhooks/twilio/status"), ("status", "4xx")): 1}


@pytest.fixture
def sent_sms(db: Session) -> Delivery:
    org = Organisation(name="Politie Metrics", kind=OrganisationKind.POLICE)
    action = Action(kind=ActionKind.SUSPECT, urgency=Urgency.URGENT, title_nl="x",
                    center_lat=52.09, center_lon=5.12, radius_m=100, organisation=org,
                    meldkamer=db.scalar(select(Meldkamer).where(Meldkamer.code == "MN")))
    person = Participant(phone=CALLER, status=ParticipantStatus.VERIFIED)
    item = Delivery(action=action, participant=person, channel=Channel.SMS,
                    status=DeliveryStatus.SENT, provider_id="SM" + "b" * 32)
    db.add(item)
    db.commit()
    return item


def test_calls_and_callbacks_are_counted_and_no_number_reaches_a_label(
        client: FlaskClient, db: Session, sent_sms: Delivery) -> None:
    call = {"CallSid": "CA" + "2" * 32, "From": CALLER, "To": "+31800001100"}
    greeting = _signed(client, "/webhooks/twilio/voice/inbound", call)
    step = re.search(r'<Gather[^>]* action="([^"]+)"', greeting.get_data(as_text=True))[1]
    path = step.replace("&amp;", "&").removeprefix(PUBLIC)
    assert "<Dial" in _signed(client, path, {**call, "Digits": "3511#"}).get_data(as_text=True)
    assert _signed(client, "/webhooks/twilio/status", {
        "MessageSid": sent_sms.provider_id, "MessageStatus": "delivered"}).status_code == 204
    record = db.scalar(select(CallRecord).where(CallRecord.provider_call_id == call["CallSid"]))
    reason = record.routing_reason.split(":", 1)[0]
    meldkamer = db.get(Meldkamer, record.meldkamer_id).code
    assert (reason, meldkamer) == ("postcode", "MN")
    response = client.get("/metrics")
    text = response.get_data(as_text=True)
    samples = _scrape(client)
    assert samples[("burgernet_inbound_calls_total", (
        ("meldkamer", meldkamer), ("reason", reason), ("transport", "twilio")))] == 1
    assert samples[("burgernet_deliveries_total", (
        ("channel", "sms"), ("purpose", "alert"), ("status", "delivered")))] == 1
    for form in (CALLER, CALLER.lstrip("+"), "0612345678", "612345678"):
        assert form not in text
    labels = [value for family in text_string_to_metric_families(text)
              for sample in family.samples for value in sample.labels.values()]
    assert labels and [v for v in labels if len(re.findall(r"\d", v)) > MOST_DIGITS] == []
