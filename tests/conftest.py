"""Fixtures that build on each other: servers → engine → reference data → session → app → client.

The suite runs on SQLite by default; TEST_DATABASE_URL (a PostgreSQL server URL) switches it
to PostgreSQL, where every database the tests use is created fresh and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine
from core.redis_server import EmbeddedRedis
from core.reference import load_reference
from core.schema import ensure_schema
from core.settings import DEFAULT_DATA_DIR, PACKAGE_DIR, Settings

MELDKAMER_CONFIG = PACKAGE_DIR.parent / "config" / "meldkamers.toml"
SERVER_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server on a free port for the whole run, killed afterwards."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client on an empty Redis database."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def new_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """A factory of URLs of new, empty databases on the backend under test."""
    created: list[str] = []

    def make() -> str:
        if SERVER_URL is None:
            return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        name = f"bn_test_{uuid.uuid4().hex[:12]}"
        _admin(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    for name in created:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(statement: str) -> None:
    assert SERVER_URL is not None
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(statement))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(new_database_url: Callable[[], str]) -> str:
    """The shared database of the run: schema at head and the reference data loaded."""
    url = new_database_url()
    engine = make_engine(url)
    ensure_schema(engine)
    with Session(engine) as session, session.begin():
        load_reference(session, DEFAULT_DATA_DIR, MELDKAMER_CONFIG)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions inside one outer transaction that is rolled back after the test.

    Code under test may commit freely: its commits release savepoints, so every test starts
    from the shared reference data and leaves nothing behind.
    """
    connection = engine.connect()
    outer = connection.begin()
    yield sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                       expire_on_commit=False)
    outer.rollback()
    connection.close()


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session on the shared data; everything it does is rolled back afterwards."""
    with sessions() as session:
        yield session


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_server: EmbeddedRedis) -> Settings:
    """Settings for an app or command under test, on the shared database and the test Redis."""
    return Settings.from_env({
        "BURGERNET_HOME": str(tmp_path),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "SECRET_KEY": "test-secret-key",
        "MELDKAMER_CONFIG": str(MELDKAMER_CONFIG),
        "TTS": "espeak",  # no test talks to Google
    })
