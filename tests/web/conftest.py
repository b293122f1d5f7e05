from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.seed import seed_demo
from core.settings import Settings
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from outbound.queues import OUTBOX_QUEUE
from outbound.runtime import Runtime
from outbound.worker import BatchWorker
from web import create_app


@pytest.fixture
def make_app(make_runtime: Callable[..., Runtime]) -> Callable[..., Flask]:
    """Apps on the test transaction: `make_app(**changes)` takes what `make_runtime` takes."""

    def make(**changes: Any) -> Flask:
        return create_app(runtime=make_runtime(**changes))

    return make


@pytest.fixture
def twilio_signed() -> dict[str, str]:
    """The settings under which Twilio's webhooks are signed as the fake signs them
    (with `public_url`, which each test chooses)."""
    return {"twilio_auth_token": AUTH_TOKEN, "twilio_account_sid": ACCOUNT_SID}


@pytest.fixture
def app(sessions: sessionmaker[Session], make_app: Callable[..., Flask]) -> Flask:
    """The app on the test transaction; demo users exist, nothing outlives the test."""
    seed_demo(sessions, size=0)
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()



@pytest.fixture
def write_outboxes(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
                   redis_client: redis.Redis) -> Callable[[], None]:
    """Run what a worker does with the outbox queue: write the outboxes of started actions
    and queue their batches (the batches stay queued; nothing is sent)."""

    def drain() -> None:
        queue = Queue(OUTBOX_QUEUE, connection=redis_client, serializer=JSONSerializer)
        BatchWorker([queue], connection=redis_client, serializer=JSONSerializer,
                    runtime=Runtime(settings, engine, sessions, redis_client)).work(burst=True)

    return drain
