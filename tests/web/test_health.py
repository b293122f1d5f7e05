import signal
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory
from core.redis_server import free_port
from core.settings import Settings
from outbound.runtime import Runtime
from tests.workers import kill_worker, worker_names, worker_process
from web import create_app


def test_health_is_ok_when_database_and_redis_answer(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok",
                                   "checks": {"database": "ok", "redis": "ok"}}


def test_health_is_degraded_when_redis_is_gone(settings: Settings, engine: Engine,
                                               sessions: sessionmaker[Session]) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    app: Flask = create_app(runtime=Runtime(settings, engine, sessions, dead))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"] == "unreachable"


# --- /readyz: may this process take traffic ---------------------------------------------


@pytest.fixture
def ready_app(settings: Settings, engine: Engine, sessions: sessionmaker[Session],
              redis_client: redis.Redis) -> Callable[..., FlaskClient]:
    """A client of the app on the test database and Redis, its clock optionally moved on."""

    def make(ahead: timedelta = timedelta(0)) -> FlaskClient:
        runtime = Runtime(settings, engine, sessions, redis_client,
                          clock=lambda: datetime.now(UTC) + ahead)
        return create_app(runtime=runtime).test_client()

    return make


def test_not_ready_while_no_worker_has_reported(ready_app) -> None:
    response = ready_app().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "not ready", "reason": "no worker has reported within 60 s",
        "checks": {"database": "ok", "redis": "ok", "workers": "none alive"}}


@pytest.mark.slow
def test_ready_with_a_live_worker_and_not_once_it_stopped(ready_app, tmp_path, database_url,
                                                          redis_server, redis_client) -> None:
    client = ready_app()
    with worker_process(tmp_path, database_url, redis_server.url, "ready-1") as worker:
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.get_json() == {
            "status": "ready",
            "checks": {"database": "ok", "redis": "ok", "workers": "1 alive"}}
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    assert worker_names(redis_client) == set()  # a worker that stops says so
    assert client.get("/readyz").status_code == 503


@pytest.mark.slow
def test_a_killed_worker_counts_until_it_has_been_silent_for_a_minute(
        ready_app, tmp_path, database_url, redis_server, redis_client) -> None:
    with worker_process(tmp_path, database_url, redis_server.url, "ready-2") as worker:
        kill_worker(worker)
    assert worker_names(redis_client) == {"ready-2"}  # RQ cannot know it died
    assert ready_app().get("/readyz").status_code == 200
    assert ready_app(ahead=timedelta(seconds=50)).get("/readyz").status_code == 200
    late = ready_app(ahead=timedelta(seconds=61)).get("/readyz")
    assert late.status_code == 503
    assert late.get_json()["reason"] == "no worker has reported within 60 s"


def test_not_ready_when_redis_cannot_be_reached(settings: Settings, engine: Engine,
                                               sessions: sessionmaker[Session]) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    response = create_app(runtime=Runtime(settings, engine, sessions, dead)).test_client() \
        .get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "not ready", "reason": "Redis: unreachable",
        "checks": {"database": "ok", "redis": "unreachable",
                   "workers": "not checked (no Redis)"}}


def test_not_ready_when_the_database_cannot_be_reached(settings: Settings,
                                                      redis_client: redis.Redis) -> None:
    dead = make_engine(f"postgresql+psycopg://burgernet@127.0.0.1:{free_port()}/burgernet")
    runtime = Runtime(settings, dead, session_factory(dead), redis_client)
    response = create_app(runtime=runtime).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "database: unreachable"
    dead.dispose()


def test_without_redis_url_readiness_asks_the_database_alone(
        settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> None:
    """The web app has always run without Redis (nothing is queued then); a deployment made
    that way is ready when its database is."""
    app = create_app(runtime=Runtime(replace(settings, redis_url=None), engine, sessions, None))
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready", "checks": {"database": "ok", "redis": "not configured",
                                      "workers": "not checked (no Redis)"}}


def test_health_stays_the_liveness_check_without_workers(client) -> None:
    assert client.get("/healthz").status_code == 200  # no worker runs in this test
    assert client.get("/readyz").status_code == 503
