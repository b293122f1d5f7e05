import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.seed import seed_demo
from core.settings import Settings
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

