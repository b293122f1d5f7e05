"""A participant's whole way through, as the demo runs it (console providers, the real worker
on a real Redis): sign-up with an SMS code, preferences with an e-mail address, a
neighbourhood inquiry by e-mail with its personal link, a reaction, a tip by SMS and a call
on the free number. Every log record of all of it, from any logger at any level, is then
read: none may hold the number, the code, the link's token or the address."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from core.models import Channel
from core.seed import seed_demo
from fakes.twilio import AUTH_TOKEN
from outbound.providers.console import ConsoleProvider
from outbound.queues import OUTBOX_QUEUE, queue_names
from outbound.runtime import Runtime
from outbound.worker import BatchWorker
from tests.conftest import UNTHROTTLED
from tests.web.helpers import csrf_token, login_as

PUBLIC = "https://bn.example"
PHONE, E164, EMAIL = "06 12345678", "+31612345678", "deelnemer@example.org"
#: Every way the number may be written in a log line.
NUMBER_FORMS = ("612345678", "12345678", "1234 5678", "123 456 78")


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "console-outbox.jsonl"


@pytest.fixture
def site(sessions: sessionmaker[Session], make_app: Callable[..., Flask],
         twilio_signed: dict[str, str], outbox: Path) -> Flask:
    """The web app (Twilio webhooks signed over PUBLIC) and a worker run in this process,
    every channel on the demo's console provider."""
    seed_demo(sessions, size=0)
    console = ConsoleProvider(outbox)
    return make_app(**twilio_signed, **UNTHROTTLED, public_url=PUBLIC,
                    providers={channel: (lambda: console) for channel in Channel})


def _work(app: Flask) -> None:
    """A worker on the app's own Runtime drains every queue."""
    runtime: Runtime = app.extensions["runtime"]
    connection = runtime.redis
    queues = [Queue(n, connection=connection, serializer=JSONSerializer)
              for n in (OUTBOX_QUEUE, *queue_names())]
    BatchWorker(queues, connection=connection, serializer=JSONSerializer,
                runtime=runtime).work(burst=True)


def _sent(outbox: Path, channel: str) -> dict[str, str]:
    return [json.loads(line) for line in outbox.read_text().splitlines()
            if json.loads(line)["channel"] == channel][-1]


def _post(client: FlaskClient, path: str, data: dict[str, object], page: str | None = None,
          token_field: str = "csrf_token"):
    return client.post(path, data={**data, token_field: csrf_token(client, page or path)})


def _twilio(client: FlaskClient, url: str, params: dict[str, str]):
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def _twiml_url(response, tag: str, attribute: str) -> str:
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    return re.search(rf'<{tag}[^>]* {attribute}="([^"]+)"', body)[1].replace("&amp;", "&")


def test_no_log_record_of_a_whole_participation_names_the_number_code_link_or_address(
        site, redis_client: redis.Redis, outbox: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    participant, officer = site.test_client(), login_as(site.test_client(),
                                                        "municipality_officer")
    assert _post(participant, "/deelnemen/aanmelden", {
        "phone": PHONE, "postcode": "3511", "language": "nl", "consent": "y"}
    ).status_code == 302
    _work(site)
    code = re.search(r"code is (\d{6})", _sent(outbox, "sms")["body"])[1]
    assert _post(participant, "/deelnemen/code", {"code": code}).status_code == 302
    assert participant.post("/deelnemen/mijn/voorkeuren", data={
        "prefs-channels": ["sms", "email", "voice"], "prefs-email": EMAIL,
        "prefs-language": "nl", "prefs-csrf_token": csrf_token(participant, "/deelnemen/mijn"),
    }).status_code == 302

    path = "/gemeente/buurtonderzoek/nieuw"
    created = _post(officer, path, {
        "title_nl": "Inbraak Biltstraat", "text_nl": "Wie zag iemand bij nummer 12?",
        "lat": "52.0907", "lon": "5.1214", "radius_m": "3000", "polygon": ""})
    inquiry = created.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    assert _post(officer, f"/gemeente/{inquiry}/versturen", {},
                 f"/gemeente/{inquiry}").status_code == 302
    _work(site)
    link = re.search(r"https://bn\.example(/reactie/[^\s?]+)", _sent(outbox, "email")["body"])[1]
    token = link.rsplit("/", 1)[1]
    assert _post(participant, link, {"text": f"Ik zag een ladder; bel {PHONE}",
                                     "contact": "06-12345678"}).status_code == 302

    sms = {"From": E164, "To": "+31800001100", "Body": f"Tip: man rende weg, mail {EMAIL}"}
    assert "tip is doorgegeven" in _twilio(participant, "/webhooks/twilio/sms", sms
                                           ).get_data(as_text=True)
    call = {"CallSid": "CA" + "7" * 32, "From": E164, "To": "+31800001100"}
    greeting = _twilio(participant, "/webhooks/twilio/voice/inbound", call)
    keyed = _twilio(participant, _twiml_url(greeting, "Gather", "action"),
                    {**call, "Digits": "0612345678#"})
    assert keyed.status_code == 200

    records = caplog.records
    assert any(r.name == "burgernet.console" for r in records)  # the flow did log
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records)
    for secret in (*NUMBER_FORMS, code, token, token.split(".")[0], EMAIL, "deelnemer@"):
        assert secret not in text, (secret, [r.getMessage() for r in records
                                             if secret in r.getMessage()])
