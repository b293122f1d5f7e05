"""The `burgernet` command: one click group; every layer adds its commands by entry point."""

from __future__ import annotations

import logging
import sys
from functools import cached_property
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TextIO

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, session_factory, transaction
from core.errors import BurgernetError
from core.logs import prepare_handler
from core.models import MAX_ID
from core.privacy import install_redaction
from core.reference import count_rows, load_reference
from core.schema import current_revision, ensure_schema, head_revision, prepare_schema
from core.settings import Settings

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

COMMAND_GROUP = "burgernet.commands"


class Context:
    """What commands share: settings from the environment, and an engine built on demand.

    Only core's part: commands that need Redis, providers, TTS or SIP take the whole
    `outbound.runtime.Runtime` instead (`outbound.cli.pass_runtime`)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @cached_property
    def settings(self) -> Settings:
        return self._settings or Settings.from_env()

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    def ready_engine(self) -> Engine:
        """The engine, with the schema upgraded (or checked, when AUTO_MIGRATE=0)."""
        prepare_schema(self.engine, upgrade=self.settings.auto_migrate)
        return self.engine


pass_context = click.make_pass_decorator(Context, ensure=True)
#: A row id on the command line: a clear error for a number no row can have.
ROW_ID = click.IntRange(0, MAX_ID)


class Group(click.Group):
    """Turns every domain error into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BurgernetError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        plugins = {entry.name for entry in entry_points(group=COMMAND_GROUP)}
        return sorted(set(super().list_commands(ctx)) | plugins)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Built-in commands first; a layer's command is imported only when it is asked for."""
        command = super().get_command(ctx, cmd_name)
        if command is None:
            for entry in entry_points(group=COMMAND_GROUP, name=cmd_name):
                command = entry.load()
                self.add_command(command, cmd_name)
        return command


@click.group(cls=Group)
@click.version_option(package_name="burgernet")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Burgernet: alert participants, route their calls to the right meldkamer."""
    context = ctx.ensure_object(Context)
    configure_logging(context.settings.log_level, log_format=context.settings.log_format)


#: Libraries whose INFO lines are noise, and in Twilio's case name the numbers it looks up.
QUIET_LOGGERS = ("alembic", "twilio")


def configure_logging(level: str, stream: TextIO | None = None,
                      log_format: str = "text") -> None:
    """Log at LEVEL to STREAM (default stderr, unless logging is set up already) as text or
    JSON lines (LOG_FORMAT, `core.logs`), every line redacted (`core.privacy`): no number,
    code, address or personal link in clear. Chatty libraries speak from WARNING, unless the
    level is DEBUG."""
    root = logging.getLogger()
    if stream is not None or not root.handlers:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        prepare_handler(handler, log_format)
        root.addHandler(handler)
        root.setLevel(level)
    install_redaction(root)
    if level != "DEBUG":
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Upgrade the schema to this version's newest migration."""
    click.echo(ensure_schema(context.engine, upgrade=True))


@db.command("current")
@pass_context
def db_current(context: Context) -> None:
    """Print the schema revision of the database and of this code."""
    click.echo(f"database: {current_revision(context.engine) or 'empty'}; code: {head_revision()}")


@db.command("cluster")
@pass_context
def db_cluster(context: Context) -> None:
    """Reorder participant locations by place (PostgreSQL), so area selections stay fast."""
    from core.targeting import cluster_locations

    context.ready_engine()
    with transaction(context.sessions) as session:
        done = cluster_locations(session)
    click.echo("participant locations clustered on their GiST index" if done
               else "nothing to do: SQLite keeps locations in index order")


def _progress(length: int, label: str) -> ProgressBar[int]:
    return click.progressbar(length=length, label=label, file=sys.stderr)


@main.command("load-reference")
@pass_context
def load_reference_command(context: Context) -> None:
    """Load the Dutch reference data; running it again changes nothing."""
    settings = context.settings
    context.ready_engine()
    total = count_rows(settings.reference_data_dir)
    with _progress(total, "reference data") as bar, \
            transaction(context.sessions) as session:
        report = load_reference(session, settings.reference_data_dir,
                                settings.meldkamer_config, progress=bar.update)
    for table in ("meldkamer", "safety_region", "municipality", "postcode"):
        click.echo(f"{table:14} inserted {report.inserted[table]:5}  "
                   f"updated {report.updated[table]:5}  unchanged {report.unchanged[table]:5}"
                   + (f"  removed {report.removed[table]:5}" if report.removed[table] else ""))
    c = report.counts
    click.echo(f"{c['municipalities']} municipalities, "
               f"{c['municipalities_with_meldkamer']} with exactly one safety region and meldkamer")
    click.echo(f"{c['safety_regions']} safety regions, {c['meldkamers']} meldkamers "
               f"({c['meldkamers_routable']} with a number and SIP URI)")
    click.echo(f"{c['postcodes']} PC4 areas, "
               f"{c['postcodes_with_municipality']} with a municipality")
    if report.relocated:
        click.echo(f"{report.relocated} participant locations followed their corrected postcode")
    click.echo(f"{report.rows_changed} row(s) changed" if report.changed else "nothing changed")


@main.command("seed-demo")
@click.option("--participants", "size", type=click.IntRange(0, 5_000_000), default=20_000,
              show_default=True, help="how many synthetic participants")
@click.option("--seed", type=int, default=2023, show_default=True, help="random seed")
@click.option("--reset", is_flag=True, help="replace existing demo participants")
@pass_context
def seed_demo_command(context: Context, size: int, seed: int, reset: bool) -> None:
    """Create demo users and a synthetic participant population (fictional numbers only)."""
    from core.seed import seed_demo

    context.ready_engine()
    with _progress(size, "participants") as bar:
        result = seed_demo(context.sessions, size=size, seed=seed, reset=reset,
                           progress=bar.update)
    click.echo(result.summary())


def run() -> None:
    """Entry point for `python -m core.cli`."""
    main(obj=Context())


if __name__ == "__main__":
    run()
