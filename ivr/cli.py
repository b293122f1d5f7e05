"""`burgernet sounds ...` (the prompt catalogue and its sound cache) and `burgernet sip`."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from core.cli import Context, pass_context
from core.db import session_factory
from core.errors import ConfigError
from core.reference import load_national_fallback
from ivr.prompts import LANGUAGES, load_catalogue
from ivr.sip import SipEndpoint
from ivr.sip_runner import SipFlowRunner
from ivr.tts import PromptRenderer, sounds_dir

_CATALOGUE_OPTION = click.option(
    "--catalogue", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
    help="a prompt catalogue other than the shipped sounds/prompts.toml")


@click.group("sounds")
def sounds_command() -> None:
    """Voice prompts: the catalogue and its rendered sound files."""


@sounds_command.command("render")
@click.option("--no-gtts", is_flag=True, help="never ask Google; speak with espeak-ng only")
@_CATALOGUE_OPTION
@pass_context
def render_command(context: Context, no_gtts: bool, catalogue: Path | None) -> None:
    """Render every fixed prompt in Dutch and English into $BURGERNET_HOME/var/sounds.

    Prompts with placeholders are skipped: calls render them with their values when needed.
    Running it again renders only what is missing.
    """
    prompts = load_catalogue(catalogue)
    cache = sounds_dir(context.settings)
    renderer = PromptRenderer(cache, use_gtts=not no_gtts)
    fixed = [prompt for prompt in prompts if not prompt.is_template]
    templated = [prompt.key for prompt in prompts if prompt.is_template]
    with click.progressbar(length=len(fixed) * len(LANGUAGES), label="prompts",
                           file=sys.stderr) as bar:
        counts = renderer.render_fixed(prompts, progress=bar.update)
    cached = counts.pop("cached", 0)
    rendered = sum(counts.values())
    by_engine = ", ".join(f"{engine} {n}" for engine, n in counts.most_common())
    click.echo(f"{rendered} rendered" + (f" ({by_engine})" if by_engine else "")
               + f", {cached} already cached")
    if templated:
        click.echo(f"{len(templated)} prompts with placeholders left for calls to render: "
                   f"{', '.join(templated)}")
    click.echo(f"sound files in {cache}")


@sounds_command.command("list")
@_CATALOGUE_OPTION
@pass_context
def list_command(context: Context, catalogue: Path | None) -> None:
    """Every prompt key with its placeholders and whether it is rendered, per language."""
    prompts = load_catalogue(catalogue)
    renderer = PromptRenderer(sounds_dir(context.settings), use_gtts=False)
    for prompt in prompts:
        if prompt.is_template:
            state = "rendered per call: " + " ".join(f"{{{name}}}"
                                                     for name in sorted(prompt.placeholders))
        else:
            found = {language: renderer.is_cached(prompt.texts[language], language)
                     for language in LANGUAGES}
            state = " ".join(f"{language} {'rendered' if is_cached else 'missing'}"
                             for language, is_cached in found.items())
        click.echo(f"{prompt.key:22} {state}")


@click.command("sip")
@pass_context
def sip_command(context: Context) -> None:
    """Answer the free number over SIP until Ctrl-C.

    Registers at SIP_PROXY as SIP_USERNAME; every call runs the free-number flow and is
    bridged to the meldkamer's SIP URI (through the same proxy).
    """
    settings = context.settings
    if settings.sip_proxy is None:
        raise ConfigError("SIP_PROXY is not set: `burgernet sip` registers at that "
                          "registrar/proxy (host:port, e.g. Kamailio at 127.0.0.1:5060)")
    engine = context.ready_engine()
    runner = SipFlowRunner(
        session_factory(engine, writer=True), load_catalogue(),
        PromptRenderer(sounds_dir(settings), use_gtts=settings.tts == "gtts"),
        national_fallback=load_national_fallback(settings.meldkamer_config),
        dial_timeout=settings.dial_timeout)
    host, port = settings.sip_proxy
    endpoint = SipEndpoint(proxy_host=host, proxy_port=port, username=settings.sip_username,
                           password=settings.sip_password, local_ip=settings.sip_local_ip,
                           rtp_ports=settings.sip_rtp_ports, on_call=runner.free_number_call)
    runner.endpoint = endpoint
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    endpoint.start()
    click.echo(f"free number registered as {settings.sip_username} at {host}:{port} "
               f"(SIP port {endpoint.sip_port}); Ctrl-C stops", err=True)
    try:
        stop.wait()
    finally:
        endpoint.stop()
