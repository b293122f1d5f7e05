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
from outbound.runtime import Runtime
from outbound.worker import BatchWorker
from web import create_app


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
def write_outboxes(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
                   redis_client: redis.Redis) -> Callable[[], None]:
    """Run what a worker does with the outbox queue: write the outboxes of started actions
    and queue their batches (the batches stay queued; nothing is sent)."""

    def drain() -> None:
        queue = Queue(OUTBOX_QUEUE, connection=redis_client, serializer=JSONSerializer)
        BatchWorker([queue], connection=redis_client, serializer=JSONSerializer,
                    runtime=Runtime(settings, engine, sessions, redis_client)).work(burst=True)

    return drain
