"""Fixtures that build on each other: servers → engine → reference data → session → app → client.

The suite runs on SQLite by default; TEST_DATABASE_URL (a PostgreSQL server URL) switches it
to PostgreSQL, where every database the tests use is created fresh and dropped afterwards.

Nothing of the developer's shell reaches the code under test: before any test module is
imported, every variable the application reads (core.settings.VARIABLES) leaves the
environment, and the time zone and locale are fixed. The time zone is deliberately neither
UTC nor Dutch: the application must work in Europe/Amsterdam time whatever the machine's
clock says, and a slip into machine-local time then fails on every machine, not only on some.
Subprocesses (the CLI, `burgernet run`, Chromium) inherit this environment.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine
from core.redis_server import EmbeddedRedis
from core.reference import load_reference
from core.schema import ensure_schema
from core.settings import DEFAULT_DATA_DIR, PACKAGE_DIR, VARIABLES, Settings
from outbound.runtime import Runtime

MELDKAMER_CONFIG = PACKAGE_DIR.parent / "config" / "meldkamers.toml"
SERVER_URL = os.environ.get("TEST_DATABASE_URL")
#: Half an hour off any whole-hour zone, with summer time on other dates than the Dutch.
TEST_TIME_ZONE = "America/St_Johns"
TEST_LOCALE = "C.UTF-8"


def _hermetic_environment() -> None:
    for name, _default, _meaning in VARIABLES:
        os.environ.pop(name, None)
    for name in [n for n in os.environ if n.startswith("LC_")]:
        del os.environ[name]
    os.environ.update(TZ=TEST_TIME_ZONE, LANG=TEST_LOCALE, LC_ALL=TEST_LOCALE)
    time.tzset()


_hermetic_environment()

# Examples are drawn from a seed fixed per test (so a failure comes back on every run) and
# no example is timed: a loaded 2-core CI machine is slow, not wrong.
hypothesis_settings.register_profile(
    "burgernet", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("burgernet")


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


#: Settings changes that let every channel send as fast as it can.
UNTHROTTLED: dict[str, Any] = {"sms_rate": 0.0, "voice_rate": 0.0, "email_rate": 0.0,
                               "push_rate": 0.0}

#: Stands for "the test Redis" where None means "no Redis".
TEST_REDIS: Any = object()


@pytest.fixture
def make_runtime(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
                 redis_client: redis.Redis) -> Iterator[Callable[..., Runtime]]:
    """Runtimes on the test transaction: `make_runtime(redis=..., providers=..., clock=...,
    **changes)` gives the test SETTINGS with CHANGES, on the test Redis unless REDIS is given
    (None: none). Each is closed after the test."""
    made: list[Runtime] = []

    def make(*, redis: Any = TEST_REDIS, **changes: Any) -> Runtime:
        extra = {key: changes.pop(key) for key in ("providers", "clock", "engine", "sessions")
                 if key in changes}
        runtime = Runtime(replace(settings, **changes), extra.pop("engine", engine),
                          extra.pop("sessions", sessions),
                          redis_client if redis is TEST_REDIS else redis, **extra)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()
