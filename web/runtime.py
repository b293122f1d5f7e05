"""The Runtime: every client the web app uses, built once from settings at the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory
from core.reference import load_national_fallback
from core.settings import Settings
from ivr.prompts import Catalogue, load_catalogue
from ivr.tts import PromptRenderer, sounds_dir


@dataclass
class Runtime:
    """Clients handed to blueprints; tests build one around their own engine and Redis."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis | None
    #: Sessions for requests that write: on SQLite they take the write lock when they begin,
    #: so concurrent webhooks wait their turn instead of failing with "database is locked".
    writer_sessions: sessionmaker[Session] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database_url)
        client = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
        return cls(settings, engine, session_factory(engine), client,
                   session_factory(engine, writer=True))

    @cached_property
    def catalogue(self) -> Catalogue:
        return load_catalogue()

    @cached_property
    def national_fallback(self) -> str:
        """The meldkamer that takes a call nobody else could be found for (configuration)."""
        return load_national_fallback(self.settings.meldkamer_config)

    @cached_property
    def prompt_renderer(self) -> PromptRenderer | None:
        """Renders prompts to audio once, into var/sounds; None where no TTS is wanted."""
        if self.settings.tts == "off":
            return None
        return PromptRenderer(sounds_dir(self.settings), use_gtts=self.settings.tts == "gtts")
