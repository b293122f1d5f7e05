import redis
from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from outbound.runtime import Runtime
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
