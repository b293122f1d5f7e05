from collections.abc import Callable

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
from outbound.queues import OUTBOX_QUEUE
from outbound.runtime import OutboundRuntime, install
from outbound.throttle import Throttle
from outbound.worker import OutboundWorker
from web import create_app
from web.runtime import Runtime


@pytest.fixture
def app(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
        redis_client: redis.Redis) -> Flask:
    """The app on the test transaction; demo users exist, nothing outlives the test."""
    seed_demo(sessions, size=0)
    return create_app(runtime=Runtime(settings, engine, sessions, redis_client))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()



@pytest.fixture
def write_outboxes(settings: Settings, sessions: sessionmaker[Session],
                   redis_client: redis.Redis) -> Callable[[], None]:
    """Run what a worker does with the outbox queue: write the outboxes of started actions
    and queue their batches (the batches stay queued; nothing is sent)."""

    def drain() -> None:
        install(OutboundRuntime(settings, sessions, redis_client, Throttle(redis_client), {}))
        queue = Queue(OUTBOX_QUEUE, connection=redis_client, serializer=JSONSerializer)
        OutboundWorker([queue], connection=redis_client, serializer=JSONSerializer).work(
            burst=True)

    return drain
