"""`burgernet action ...`: create, preview, start and follow an action from the command line;
`burgernet push ...`, `burgernet sip`; and `pass_runtime`, how commands get the Runtime."""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.cli import ROW_ID, Context, pass_context
from core.db import transaction
from core.errors import ConfigError
from core.models import (
    Action,
    ActionKind,
    Language,
    Organisation,
    Outcome,
    Urgency,
)
from core.permissions import actor_for_organisation
from core.settings import vapid_key_path
from ivr.registration import REPORT_EVERY, RegistrationReport
from outbound.actions import (
    ActionDraft,
    create_action,
    end_and_queue,
    require_action,
    start_and_queue,
)
from outbound.fanout import ActionError, preview_action
from outbound.metrics import serve_process
from outbound.progress import forecast, progress
from outbound.providers.webpush import application_server_key, generate_vapid_key
from outbound.runtime import Runtime, build_runtime
from outbound.sms import sms_size
from outbound.templates import alert_text

P = ParamSpec("P")
R = TypeVar("R")


def pass_runtime(command: Callable[Concatenate[Runtime, P], R]) -> Callable[P, R]:
    """Hand COMMAND the process's Runtime, built from the CLI's settings when the command runs
    (not before: `--help` builds nothing) and closed when it returns. Commands that need only
    the database keep core's `Context`."""

    @pass_context
    @functools.wraps(command)
    def run(context: Context, *args: P.args, **kwargs: P.kwargs) -> R:
        runtime = build_runtime(context.settings)
        try:
            return command(runtime, *args, **kwargs)
        finally:
            runtime.close()

    return run


@click.group("action")
def action_command() -> None:
    """Search actions, AMBER Alerts and messages."""


@action_command.command("create")
@click.option("--kind", type=click.Choice([k.value for k in ActionKind]), required=True)
@click.option("--urgency", type=click.Choice([u.value for u in Urgency]), default=None,
              help="default: urgent for suspect, vehicle, missing person and AMBER")
@click.option("--title", required=True, help="title in Dutch")
@click.option("--title-en", default=None)
@click.option("--description", default="", help="description in Dutch")
@click.option("--description-en", default=None)
@click.option("--instruction", default="", help="what to do, in Dutch")
@click.option("--instruction-en", default=None)
@click.option("--lat", type=float, default=None)
@click.option("--lon", type=float, default=None)
@click.option("--radius", "radius_m", type=float, default=None, help="metres")
@click.option("--polygon", "polygon_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="GeoJSON file with a Polygon or MultiPolygon")
@click.option("--national", is_flag=True, help="AMBER Alert for the whole country")
@click.option("--meldkamer", "meldkamer_code", required=True, help="code, e.g. MN")
@click.option("--organisation", default="Politie Midden-Nederland", show_default=True)
@pass_context
def create(context: Context, kind: str, urgency: str | None, title: str, title_en: str | None,
           description: str, description_en: str | None, instruction: str,
           instruction_en: str | None, lat: float | None, lon: float | None,
           radius_m: float | None, polygon_file: Path | None, national: bool,
           meldkamer_code: str, organisation: str) -> None:
    """Create a draft action of ORGANISATION; prints its id. The organisation's rules hold
    here too: a municipality makes only inquiries and messages, within its boundary."""
    draft = ActionDraft(kind=kind, urgency=urgency, title_nl=title, title_en=title_en,
                        description_nl=description, description_en=description_en,
                        instruction_nl=instruction, instruction_en=instruction_en,
                        lat=lat, lon=lon, radius_m=radius_m, national=national,
                        polygon=json.loads(polygon_file.read_text(encoding="utf-8"))
                        if polygon_file else None,
                        meldkamer_code=meldkamer_code)
    context.ready_engine()
    with transaction(context.sessions) as session:
        org = session.scalar(select(Organisation).where(Organisation.name == organisation))
        if org is None:
            raise ActionError(f"unknown organisation {organisation!r}")
        action = create_action(session, draft, actor_for_organisation(org, "cli"))
        click.echo(action.id)


@action_command.command("preview")
@click.argument("action_id", type=ROW_ID)
@pass_context
def preview_command(context: Context, action_id: int) -> None:
    """Who the action would reach, by channel and municipality; writes nothing."""
    context.ready_engine()
    with context.sessions() as session:
        action = _action(session, action_id)
        result = preview_action(session, action, datetime.now(UTC))
    click.echo(f"{result.participants} participants, {result.messages} messages")
    seconds = forecast(context.settings, result.by_channel)
    for channel, number in result.channels_ranked():
        held = f", {result.held[channel]} held until quiet hours end" \
            if result.held[channel] else ""
        click.echo(f"  {channel.value:6} {number}{held}; {seconds[channel]:.0f} s at the "
                   "configured rate")
    click.echo(f"forecast: everyone reached in {max(seconds.values(), default=0):.0f} s")
    for name, number in result.municipalities_ranked()[:10]:
        click.echo(f"  {name:28} {number}")
    for language in Language:
        size = sms_size(alert_text(action, language, context.settings.free_number))
        click.echo(f"SMS text ({language.value}): {size.segments} part(s), "
                   f"{size.units} {size.encoding} characters")


@action_command.command("start")
@click.argument("action_id", type=ROW_ID)
@pass_runtime
def start_command(runtime: Runtime, action_id: int) -> None:
    """Start a draft action: write its outbox and queue it. Starting again does nothing."""
    connection = runtime.connect_redis("starting an action")
    runtime.ready_engine()
    result = start_and_queue(runtime.writer, connection, action_id, now=runtime.clock())
    if not result.started:
        click.echo(f"action {action_id} was already started; nothing done")
        return
    click.echo(f"action {action_id} started: {result.deliveries} deliveries "
               f"in {len(result.batches)} batches")


@action_command.command("status")
@click.argument("action_id", type=ROW_ID)
@pass_context
def status_command(context: Context, action_id: int) -> None:
    """Deliveries by channel and status, the current rate and the time left."""
    context.ready_engine()
    with context.sessions() as session:
        action = _action(session, action_id)
        result = progress(session, action_id, context.settings, datetime.now(UTC))
    click.echo(f"action {action_id} ({action.status.value}): {result.total} deliveries")
    for channel, by_status in sorted(result.counts.items()):
        parts = ", ".join(f"{status.value} {n}" for status, n in sorted(by_status.items()))
        rate = result.rate_per_second.get(channel, 0.0)
        click.echo(f"  {channel.value:6} {parts}; {rate:.1f}/s now; "
                   f"{result.remaining_seconds.get(channel, 0):.0f} s to go")
    click.echo(f"forecast: everyone reached in {result.forecast_seconds:.0f} s")


def _action(session: Session, action_id: int) -> Action:
    return require_action(session, action_id)


@action_command.command("end")
@click.argument("action_id", type=ROW_ID)
@click.option("--outcome", type=click.Choice([o.value for o in Outcome]), required=True)
@click.option("--text", default=None, help="a sentence for everyone the action reached")
@pass_runtime
def end_command(runtime: Runtime, action_id: int, outcome: str, text: str | None) -> None:
    """End an active action; everyone it reached gets the result (voice: by SMS)."""
    connection = runtime.connect_redis("ending an action (the results are queued)")
    runtime.ready_engine()
    ending = end_and_queue(runtime.sessions, connection, action_id, outcome, text,
                           now=runtime.clock())
    click.echo(f"action {action_id} ended ({outcome}): {ending.results} result messages, "
               f"{len(ending.held)} held until quiet hours end")


@click.group("push")
def push_command() -> None:
    """App push over Web Push: the VAPID key pair browsers subscribe with."""


@push_command.command("keygen")
@click.option("--force", is_flag=True,
              help="replace an existing key (every browser then has to subscribe again)")
def keygen_command(force: bool) -> None:
    """Write a new VAPID key pair to VAPID_PRIVATE_KEY and print the public key."""
    path = vapid_key_path(os.environ)  # not Settings: with PUSH_PROVIDER=webpush it wants the key
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; its subscriptions stop working if it is replaced "
                          "(use --force to replace it anyway)")
    public = generate_vapid_key(path)
    click.echo(f"private key written to {path}", err=True)
    click.echo("applicationServerKey for PushManager.subscribe():", err=True)
    click.echo(public)


@push_command.command("public-key")
def public_key_command() -> None:
    """Print the applicationServerKey of the configured VAPID key."""
    click.echo(application_server_key(vapid_key_path(os.environ)))


@click.command("sip")
@pass_runtime
def sip_command(runtime: Runtime) -> None:
    """Answer the free number over SIP until Ctrl-C.

    Registers at SIP_PROXY as SIP_USERNAME; every call runs the free-number flow and is
    bridged to the meldkamer's SIP URI (through the same proxy).
    """
    settings = runtime.settings
    runner = runtime.sip_runner(settings.sip_username, free_number=True)
    endpoint = runner.endpoint
    assert endpoint is not None and settings.sip_proxy is not None
    runtime.ready_engine()
    server = serve_process(runtime)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    endpoint.start()
    host, port = settings.sip_proxy
    click.echo(f"free number registered as {settings.sip_username} at {host}:{port} "
               f"(SIP port {endpoint.sip_port}); Ctrl-C stops", err=True)
    node = f"{settings.sip_username}@{settings.sip_local_ip}:{endpoint.sip_port}"
    # for `burgernet status` on any host; without Redis there is nobody to tell
    report = RegistrationReport(runtime.redis, node, f"{host}:{port}") if runtime.redis else None
    try:
        while True:
            if report is not None:
                report.report(endpoint.registered, runtime.clock())
            if stop.wait(REPORT_EVERY):
                break
    finally:
        endpoint.stop()
        if report is not None:
            report.withdraw()
        if server is not None:
            server.close()
