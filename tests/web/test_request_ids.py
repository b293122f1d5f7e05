"""A request id per web request (the caller's X-Request-ID when well formed), answered in the
header, on the request's JSON log lines, and carried into the jobs it queues, so a real
worker's lines for them name it too."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from core.db import transaction
from core.models import Action, Channel, Organisation
from core.tokens import create_token
from fakes.twilio import AUTH_TOKEN
from outbound.providers.console import ConsoleProvider
from outbound.queues import OUTBOX_QUEUE, queue_names
from outbound.runtime import Runtime
from outbound.worker import BatchWorker
from tests.conftest import UNTHROTTLED
from tests.logs import json_log
from tests.population import add_people, neighbourhood
from tests.web.test_api import MN, bearer

GENERATED = re.compile(r"[0-9a-f]{32}")
RID = "trace-7f3a-0042"


def test_a_request_without_an_id_gets_a_new_one(client: FlaskClient) -> None:
    first = client.get("/livez").headers["X-Request-ID"]
    second = client.get("/livez").headers["X-Request-ID"]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second) and first != second


@pytest.mark.parametrize("given", [RID, "0f8b2c1e-5d7a-4c3b-9e2f-1a2b3c4d5e6f",
                                   "1-67891233-abcdef012345678912345678", "a" * 128])
def test_a_well_formed_id_is_kept(client: FlaskClient, given: str) -> None:
    assert client.get("/livez", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given


@pytest.mark.parametrize("given", ["", "short", "a" * 129, "has space-12345", "-leading-dash",
                                   "slash/in/it/1234", "naïve-request-1", "0612345678",
                                   "+31612345678", "user@example.org", "x\u2028y-12345678"])
def test_a_malformed_id_or_one_the_log_would_mask_is_replaced(client: FlaskClient,
                                                              given: str) -> None:
    answered = client.get("/livez", headers={"X-Request-ID": given}).headers["X-Request-ID"]
    assert GENERATED.fullmatch(answered)


def test_a_refused_request_names_its_id_too(client: FlaskClient) -> None:
    response = client.get("/livez?q=%00", headers={"X-Request-ID": RID})
    assert response.status_code == 400 and response.headers["X-Request-ID"] == RID


def test_a_views_lines_carry_the_request_and_its_action(app: Flask) -> None:
    def view(action_id: int) -> str:
        logging.getLogger("burgernet.test").info("looked at the action")
        return "ok"

    app.add_url_rule("/test/actions/<int:action_id>", view_func=view)
    with json_log() as output:
        response = app.test_client().get("/test/actions/12", headers={"X-Request-ID": RID})
        logging.getLogger("burgernet.test").info("after the request")
    assert response.status_code == 200
    during, after = output.lines("burgernet.test")
    assert (during["request_id"], during["action_id"]) == (RID, 12)
    assert "request_id" not in after and "action_id" not in after


def test_a_webhooks_lines_name_the_call(make_app: Callable[..., Flask],
                                        twilio_signed: dict[str, str]) -> None:
    client = make_app(**twilio_signed, public_url="https://bn.example").test_client()
    params = {"CallSid": "CA" + "b" * 32, "CallStatus": "exploded"}
    url = "/webhooks/twilio/status"
    signature = RequestValidator(AUTH_TOKEN).compute_signature("https://bn.example" + url,
                                                               params)
    with json_log() as output:
        answer = client.post(url, data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 204
    [line] = output.lines("web.webhooks")
    assert line["message"].startswith("unknown status 'exploded'")
    assert line["call_id"] == "CA" + "b" * 32 and GENERATED.fullmatch(line["request_id"])
    assert line["request_id"] == answer.headers["X-Request-ID"]


def test_the_request_id_travels_into_the_jobs_and_the_workers_lines(
        client: FlaskClient, sessions: sessionmaker[Session], redis_client: redis.Redis,
        make_runtime: Callable[..., Runtime], tmp_path) -> None:
    """A national AMBER Alert started through the API: the request queues the outbox job, a
    real worker writes the outbox and queues the batches, and sends them; every line of the
    worker's jobs names the request, and the sends their action and delivery."""
    with sessions() as session:
        add_people(session, neighbourhood(6), datetime.now(UTC))
        session.commit()
    with transaction(sessions) as session:
        police = session.scalar(select(Organisation).where(Organisation.name == MN))
        _token, token = create_token(session, police, "GMS", now=datetime.now(UTC),
                                     scopes=("amber", "amber_national"))
    answer = client.post("/api/v1/actions", json={
        "kind": "amber", "title": {"nl": "Vermist kind"}, "national": True, "start": True},
        headers=bearer(token, **{"X-Request-ID": RID}))
    assert answer.status_code == 201 and answer.headers["X-Request-ID"] == RID
    action_id = answer.get_json()["id"]
    outbox = Queue(OUTBOX_QUEUE, connection=redis_client, serializer=JSONSerializer)
    assert [job.meta for job in outbox.get_jobs()] == [{"request_id": RID}]

    console = ConsoleProvider(tmp_path / "outbox.jsonl")
    runtime = make_runtime(**UNTHROTTLED,
                           providers={channel: (lambda: console) for channel in Channel})
    worker = BatchWorker([Queue(n, connection=redis_client, serializer=JSONSerializer)
                          for n in queue_names()], connection=redis_client,
                         serializer=JSONSerializer, runtime=runtime)
    with json_log() as output:
        worker.work(burst=True)

    with sessions() as session:
        assert session.scalar(select(Action.status).where(Action.id == action_id)) == "active"
    sends = output.lines("burgernet.console")
    assert len(sends) == len((tmp_path / "outbox.jsonl").read_text().splitlines()) > 0
    for line in sends:
        assert line["request_id"] == RID and line["action_id"] == action_id
        assert isinstance(line["delivery_id"], int) and line["job_id"].startswith("deliveries-")
    done = [line for line in output.lines("rq.worker")
            if line.get("job_id") == f"outbox-{action_id}"]
    assert done and all(line["request_id"] == RID and line["action_id"] == action_id
                        for line in done)
