"""The Runtime: every client the web app uses, built once from settings at the composition root."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory
from core.settings import Settings


@dataclass
class Runtime:
    """Clients handed to blueprints; tests build one around their own engine and Redis."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database_url)
        client = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
        return cls(settings, engine, session_factory(engine), client)
