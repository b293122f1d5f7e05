"""`burgernet worker`: an RQ worker on the outbound queues."""

from __future__ import annotations

import click
import redis
from rq import Queue, Worker

from core.cli import Context, pass_context
from core.errors import ConfigError
from outbound.queues import queue_names


@click.command("worker")
@click.option("--queue", "queues", multiple=True,
              help="queue to drain (repeatable); default: every outbound queue by priority")
@click.option("--burst", is_flag=True, help="stop when the queues are empty")
@click.option("--name", default=None, help="worker name (default: host and pid)")
@pass_context
def worker_command(context: Context, queues: tuple[str, ...], burst: bool,
                   name: str | None) -> None:
    """Process outbound jobs from Redis until stopped."""
    url = context.settings.redis_url
    if not url:
        raise ConfigError("REDIS_URL is not set: a worker needs the Redis that `burgernet run` "
                          "or your deployment provides")
    connection = redis.Redis.from_url(url)
    try:
        connection.ping()
    except redis.RedisError as exc:
        raise ConfigError(f"cannot reach Redis at REDIS_URL: {exc}") from None
    context.ready_engine()
    names = list(queues) or queue_names()
    worker = Worker([Queue(n, connection=connection) for n in names], connection=connection,
                    name=name)
    worker.work(burst=burst, with_scheduler=not burst)
