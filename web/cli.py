"""`burgernet web` (gunicorn) and `burgernet run` (the whole system with demo data)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from typing import Any

import click
from gunicorn.app.base import BaseApplication

from core.cli import Context, load_reference_command, pass_context, seed_demo_command
from core.metrics import process_gone, use_directory
from core.redis_server import EmbeddedRedis
from core.seed import DEMO_PASSWORD, DEMO_USERS
from core.settings import Settings
from web.access_log import JsonPrivateLogger, PrivateLogger


class _Gunicorn(BaseApplication):
    """Gunicorn serving create_app(settings), configured from our settings, not its argv."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from web import create_app

        return create_app(self.settings)


@click.command("web")
@pass_context
def web_command(context: Context) -> None:
    """Serve the web app with gunicorn on WEB_HOST:WEB_PORT."""
    settings = context.settings
    context.ready_engine()
    # Every gunicorn process keeps its metrics here; /metrics in any of them reads them all.
    metrics_dir = settings.metrics_dir or settings.var_dir / "metrics"
    use_directory(metrics_dir)
    _Gunicorn(settings, {
        "bind": f"{settings.web_host}:{settings.web_port}",
        "workers": settings.web_workers,
        "worker_class": "gthread",
        "threads": 4,
        "accesslog": "-",
        # no reaction token, code or number in the log; JSON lines with LOG_FORMAT=json
        "logger_class": JsonPrivateLogger if settings.log_format == "json" else PrivateLogger,
        "loglevel": settings.log_level.lower(),
        "proc_name": "burgernet-web",
        "child_exit": lambda _server, worker: process_gone(worker.pid, metrics_dir),
    }).run()


@click.command("run")
@click.option("--participants", type=click.IntRange(0, 5_000_000), default=20_000,
              show_default=True, help="synthetic participants to seed on first start")
@pass_context
@click.pass_context
def run_command(ctx: click.Context, context: Context, participants: int) -> None:
    """Start everything with demo data: Redis (unless REDIS_URL or REDIS_SENTINELS is set),
    web and a worker."""
    settings = context.settings
    # A shell starts background jobs with SIGINT ignored; `kill -INT` must still stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with ExitStack() as stack:
        redis_url = settings.redis_url
        if not redis_url and not settings.redis_sentinels:
            redis_url = stack.enter_context(EmbeddedRedis(settings.var_dir / "redis")).url
            click.echo(f"started redis-server on {redis_url}")
            # for commands in another terminal: REDIS_URL=$(cat var/redis.url) burgernet ...
            marker = settings.var_dir / "redis.url"
            marker.write_text(redis_url + "\n")
            stack.callback(marker.unlink, missing_ok=True)
        ctx.invoke(load_reference_command)
        ctx.invoke(seed_demo_command, size=participants, seed=2023, reset=False)
        env = {**os.environ, "BURGERNET_HOME": str(settings.home),
               "DATABASE_URL": settings.database_url, "SECRET_KEY": settings.secret_key}
        if redis_url:  # else the children find Redis through REDIS_SENTINELS, as we do
            env["REDIS_URL"] = redis_url
        if settings.sms_provider == "console":
            env.setdefault("SMS_RATE", "100")  # nothing leaves the machine: no carrier limit
        if settings.voice_provider == "console":
            env.setdefault("VOICE_RATE", "20")
        _write_demo_env(stack, settings, env)
        children = {name: _spawn(stack, [sys.executable, "-m", "core.cli", name], env)
                    for name in ("web", "worker")}
        _banner(settings)
        try:
            while True:
                for name, child in children.items():
                    if child.poll() is not None:
                        raise click.ClickException(f"{name} stopped (exit {child.returncode})")
                time.sleep(0.5)
        except KeyboardInterrupt:
            click.echo("\nstopping")


#: What `burgernet run` sets for its children that a command in another terminal needs too
#: (the Redis it started, the demo's rates, which `action preview` and `status` report).
DEMO_ENV = ("REDIS_URL", "SMS_RATE", "VOICE_RATE")


def _write_demo_env(stack: ExitStack, settings: Settings, env: dict[str, str]) -> None:
    """`var/demo.env`, for another terminal: `set -a; . var/demo.env; set +a`."""
    path = settings.var_dir / "demo.env"
    path.write_text("".join(f"{name}={shlex.quote(env[name])}\n"
                            for name in DEMO_ENV if name in env))
    stack.callback(path.unlink, missing_ok=True)


def _spawn(stack: ExitStack, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(argv, env=env)

    def stop() -> None:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    stack.callback(stop)
    return child


def _banner(settings: Settings) -> None:
    users = "\n".join(f"    {u.email:28} {u.role.value}" for u in DEMO_USERS)
    click.echo(f"""
Burgernet is running: {settings.public_url}/
  log in with password {DEMO_PASSWORD!r} as
{users}
  health: {settings.public_url}/healthz
Press Ctrl-C to stop.
""")
